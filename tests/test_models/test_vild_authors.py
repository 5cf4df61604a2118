# Copyright (c) mmovl contributors. All rights reserved.
"""ViLD as its authors ran it: prompts of LVIS names, the proposal store's
teacher, clipped proposals, norms, one RoI batch, Huber losses."""
import json
import os.path as osp

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.structures import InstanceData

from mmovl.datasets.transforms import LoadCLIPProposalEmbeds, PackViLDInputs
from mmovl.models.teachers.vild_prompts import (VILD_TEMPLATES,
                                                encode_vild_names,
                                                read_synonyms, vild_article,
                                                vild_processed_name,
                                                vild_prompts)
from mmovl.utils.proposal_embed_store import (make_store_index, write_shard,
                                              write_store_index)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
LVIS_CONFIG = osp.join(REPO, 'configs', 'vild',
                       'vild_r50_fpn_32xb8_180k_lvis_v1_base.py')


# -- names and prompts ------------------------------------------------------
def test_lvis_names_processed_as_the_authors_hand_checked():
    # real LVIS v1 names (underscores, parentheses, capitals, hyphens)
    assert vild_processed_name('bat_(animal)') == 'bat (animal)'
    assert vild_processed_name('Band_Aid') == 'band aid'
    assert vild_processed_name('aerosol_can') == 'aerosol can'
    assert vild_processed_name('bow-tie') == 'bow-tie'
    assert vild_processed_name('arctic_(type_of_shoe)') == \
        'arctic (type of shoe)'
    assert vild_processed_name('Dixie_cup') == 'dixie cup'
    # the article comes from the raw name (capital letters take 'a')
    assert [vild_article(n) for n in
            ('aerosol_can', 'Band_Aid', 'egg', 'umbrella', 'bat_(animal)')] \
        == ['an', 'a', 'an', 'an', 'a']


def test_prompts_of_a_name_hand_checked():
    assert len(VILD_TEMPLATES) == 63
    prompts = vild_prompts('aerosol_can')
    assert len(prompts) == 63 and len(set(prompts)) == 63
    assert prompts[0] == 'There is an aerosol can in the scene.'
    assert prompts[1] == 'There is the aerosol can in the scene.'
    assert prompts[2] == 'This is a photo of an aerosol can in the scene.'
    assert prompts[5] == 'itap of an aerosol can.'  # no 'This is' before 'i'
    assert prompts[8] == 'This is a photo of an aerosol can.'
    assert prompts[52] == 'This is the plastic aerosol can.'
    assert prompts[59] == 'This is an embroidered aerosol can.'
    assert vild_prompts('bat_(animal)')[-1] == \
        'This is a painting of a bat (animal).'
    assert not any('_' in p for p in vild_prompts('Band_Aid'))


class _RecordingTeacher:
    """Embeds each sentence by a fixed random vector; records the
    sentences, and averages as CLIPTeacher.encode_labels does."""

    def __init__(self, dim=16):
        self.dim, self.sentences, self._vecs = dim, [], {}

    def vec(self, sentence):
        if sentence not in self._vecs:
            g = torch.Generator().manual_seed(len(self._vecs) + 1)
            self._vecs[sentence] = F.normalize(
                torch.randn(self.dim, generator=g), dim=0)
        return self._vecs[sentence]

    def encode_labels(self, names, templates):
        out = []
        for name in names:
            sentences = [t.format(name) for t in templates]
            self.sentences += sentences
            out.append(F.normalize(
                torch.stack([self.vec(s) for s in sentences]).mean(0), dim=0))
        return torch.stack(out)


def test_encode_vild_names_with_synonyms(tmp_path):
    # an LVIS annotation file's categories (real names and synonyms)
    ann = tmp_path / 'lvis.json'
    ann.write_text(json.dumps(dict(categories=[
        dict(id=1, name='aerosol_can', synonyms=['aerosol_can',
                                                  'spray_can']),
        dict(id=6, name='alligator', synonyms=['alligator', 'gator']),
        dict(id=8, name='ambulance', synonyms=['ambulance'])])))
    assert read_synonyms(str(ann))['alligator'] == ['alligator', 'gator']
    teacher = _RecordingTeacher()
    names = ['ambulance', 'aerosol_can', 'alligator', 'bat_(animal)']
    got = encode_vild_names(teacher, names, str(ann))
    # independently: each synonym is the mean of its 63 sentences' vectors,
    # a class the mean of its synonyms (normalised each time)

    def mean(vs):
        return F.normalize(torch.stack(vs).mean(0), dim=0)

    def of(raw):
        return mean([teacher.vec(s) for s in vild_prompts(raw)])

    expected = torch.stack([
        of('ambulance'), mean([of('aerosol_can'), of('spray_can')]),
        mean([of('alligator'), of('gator')]), of('bat_(animal)')])
    torch.testing.assert_close(got, expected)
    assert set(teacher.sentences) == {
        s for raw in ('ambulance', 'aerosol_can', 'spray_can', 'alligator',
                      'gator', 'bat_(animal)') for s in vild_prompts(raw)}


def test_vild_config_prompts_as_the_authors():
    from mmengine.config import Config
    cfg = Config.fromfile(LVIS_CONFIG)
    assert cfg.model.templates == 'vild'
    assert cfg.model.synonyms.endswith('lvis_v1_val.json')


# -- the proposal store knows its teacher -----------------------------------
def _store(root, teacher):
    settings = dict(teacher=teacher, scales=[1.0, 1.5],
                    proposals=dict(model_config='abc', weights='random'))
    index = make_store_index(settings, 1, 4, 3)
    write_store_index(str(root), index)
    write_shard(osp.join(str(root), index['shards'][0]), [7],
                [np.array([[2., 2., 20., 20.]], np.float32)],
                [np.ones((1, 3), np.float32)], index['settings_hash'], 0)


def _packed(root):
    results = LoadCLIPProposalEmbeds(str(root))(
        dict(img_id=7, img=np.zeros((32, 32, 3), np.uint8),
             img_shape=(32, 32), ori_shape=(32, 32)))
    return PackViLDInputs()(results)['data_samples']


class _Teacher:
    model_name = 'ViT-B-32-quickgelu'
    checkpoint = 'checkpoints/clip_vit_b32_openai.safetensors'

    def _get_weights_id(self):
        return 'sha256:' + 'b' * 64


def _check(sample):
    from mmovl.models import ViLD
    fake = type('FakeViLD', (), dict(
        teacher=_Teacher(), _checked_teachers=set(),
        check_proposal_teacher=ViLD.check_proposal_teacher))()
    fake.check_proposal_teacher([sample])
    return fake


def test_training_refuses_a_store_of_another_teacher(tmp_path):
    other = dict(model_name='ViT-B-16-quickgelu', weights='sha256:' + 'a' * 64,
                 image_size=[224, 224])
    _store(tmp_path, other)
    sample = _packed(tmp_path)
    assert sample.clip_proposals.metainfo['teacher'] == dict(
        model_name='ViT-B-16-quickgelu', weights='sha256:' + 'a' * 64)
    with pytest.raises(ValueError) as e:
        _check(sample)
    msg = str(e.value)
    assert 'ViT-B-16-quickgelu' in msg and 'ViT-B-32-quickgelu' in msg
    assert 'a' * 64 in msg and 'b' * 64 in msg
    # same architecture, other weights: refused too
    _store(tmp_path / 'w', dict(other, model_name='ViT-B-32-quickgelu'))
    with pytest.raises(ValueError, match='ViT-B-32-quickgelu'):
        _check(_packed(tmp_path / 'w'))
    # a store that records no teacher
    _store(tmp_path / 'none', None)
    with pytest.raises(ValueError, match='records no teacher'):
        _check(_packed(tmp_path / 'none'))
    # the same teacher passes, and is checked once
    _store(tmp_path / 'same', dict(model_name='ViT-B-32-quickgelu',
                                   weights='sha256:' + 'b' * 64))
    fake = _check(_packed(tmp_path / 'same'))
    assert fake._checked_teachers == {('ViT-B-32-quickgelu',
                                       'sha256:' + 'b' * 64)}


def test_precompute_tool_takes_its_teacher_from_the_config():
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        'precompute_vild_embeds',
        osp.join(REPO, 'tools', 'misc', 'precompute_vild_embeds.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    args = tool.parse_args([LVIS_CONFIG, 'rpn.pth', '--dataset-config',
                            LVIS_CONFIG, '--out', 'x'])
    assert args.clip_model is None and args.clip_checkpoint is None
    assert tool.resolve_teacher(args) == (
        'ViT-B-32-quickgelu', 'checkpoints/clip_vit_b32_openai.safetensors')


# -- clipped proposals are kept (the authors' code) -------------------------
def test_clipped_proposals_kept_as_the_authors():
    # a crop of x in [10, 30), y in [0, 20) of a 40 x 40 image
    homography = np.array([[1., 0., -10.], [0., 1., 0.], [0., 0., 1.]])
    boxes = np.array([[12., 2., 18., 8.],     # inside
                      [0., 0., 14., 10.],     # 4 / 14 of its width left
                      [0., 25., 8., 35.],     # cut away: left of, below
                      [32., 2., 38., 8.],     # cut away: right of the crop
                      [0., 0., 5., 0.]], np.float32)  # clips to all zeros

    def pack(**kwargs):
        results = dict(img=np.zeros((20, 20, 3), np.uint8), img_id=1,
                       img_shape=(20, 20), homography_matrix=homography,
                       clip_proposals=boxes,
                       clip_embeds=np.eye(5, 3, dtype=np.float32))
        return PackViLDInputs(**kwargs)(results)['data_samples'] \
            .clip_proposals

    authors = pack()
    # by hand: shifted by -10 in x, clipped to [0, 20] x [0, 20]
    np.testing.assert_array_equal(
        authors.bboxes.numpy(),
        [[2, 2, 8, 8], [0, 0, 4, 10], [0, 20, 0, 20], [20, 2, 20, 8]])
    np.testing.assert_array_equal(authors.embeds.numpy(), np.eye(5, 3)[:4])
    assert len(pack(min_visible=0.5)) == 1
    assert len(pack(min_visible=0.0)) == 2
