# Copyright (c) mmovl contributors. All rights reserved.
"""ViLD as its authors ran it: prompts of LVIS names, the proposal store's
teacher, clipped proposals, norms, one RoI batch, Huber losses."""
import json
import os.path as osp
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.structures import InstanceData

from mmovl.datasets.transforms import LoadCLIPProposalEmbeds, PackViLDInputs
from mmovl.embeds.proposal_store import (make_store_index, write_shard,
                                         write_store_index)
from mmovl.models.teachers.vild_prompts import (VILD_TEMPLATES,
                                                encode_vild_names,
                                                read_synonyms, vild_article,
                                                vild_processed_name,
                                                vild_prompts)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
LVIS_CONFIG = osp.join(REPO, 'configs', 'vild',
                       'vild_r50_fpn_32xb8_180k_lvis_v1_base.py')


@pytest.fixture(scope='module')
def lvis_cfg():
    """The LVIS ViLD config, as mmengine reads it."""
    from mmengine.config import Config
    return Config.fromfile(LVIS_CONFIG)


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
        dict(id=1, name='aerosol_can',
             synonyms=['aerosol_can', 'spray_can']),
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


def test_vild_config_prompts_as_the_authors(lvis_cfg):
    assert lvis_cfg.model.templates == 'vild'
    assert lvis_cfg.model.synonyms.endswith('lvis_v1_val.json')


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

    weights_id = 'sha256:' + 'b' * 64


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


# -- one RoI batch: BN sees the sampled RoIs and the proposals together -----
def _roi_head(image_branch='shared'):
    from mmdet.registry import MODELS
    from mmengine.config import ConfigDict
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')
    torch.manual_seed(0)
    bn = dict(type='BN', momentum=1.0)  # running stats = the last batch's
    head = MODELS.build(dict(
        type='ViLDRoIHead',
        bbox_roi_extractor=dict(
            type='SingleRoIExtractor',
            roi_layer=dict(type='RoIAlign', output_size=7, sampling_ratio=0),
            out_channels=4, featmap_strides=[4]),
        bbox_head=dict(
            type='ViLDBBoxHead', in_channels=4, roi_feat_size=7,
            num_shared_convs=1, num_shared_fcs=1, conv_out_channels=4,
            fc_out_channels=8, embed_dim=8, norm_cfg=bn, norm_fcs=True,
            image_branch=image_branch, num_classes=3,
            loss_bbox=dict(type='SmoothL1Loss', beta=1.0, loss_weight=1.0)),
        train_cfg=ConfigDict(
            assigner=dict(type='MaxIoUAssigner', pos_iou_thr=0.5,
                          neg_iou_thr=0.5, min_pos_iou=0.5),
            sampler=dict(type='RandomSampler', num=6, pos_fraction=0.5,
                         add_gt_as_proposals=True),
            pos_weight=-1)))
    head.init_weights()
    head.bbox_head.set_class_embeddings(F.normalize(torch.randn(3, 8), dim=1))
    return head.train()


def _roi_batch():
    from mmdet.structures import DetDataSample
    samples, rpn = [], []
    for i in range(2):
        s = DetDataSample(metainfo=dict(img_shape=(64, 64)))
        s.gt_instances = InstanceData(
            bboxes=torch.tensor([[8., 8., 40., 40.]]) + 4 * i,
            labels=torch.tensor([i]))
        s.clip_proposals = InstanceData(
            metainfo=dict(frame='input'),
            bboxes=torch.tensor([[2., 2., 20., 30.], [30., 10., 60., 60.],
                                 [0., 0., 64., 64.]])[:3 - i],
            embeds=F.normalize(torch.randn(3 - i, 8), dim=1))
        samples.append(s)
        rpn.append(InstanceData(
            bboxes=torch.tensor([[6., 6., 38., 42.], [20., 20., 60., 60.],
                                 [0., 30., 30., 64.], [10., 0., 50., 20.]]),
            scores=torch.ones(4)))
    return samples, rpn


@pytest.fixture
def roi_batch():
    """``make(image_branch)``: the RoI head of that image branch, a batch
    of two images (samples, RPN proposals, one feature level ``x``) and
    ``seen``, the RoIs of each pass through the RoI extractor."""

    def make(image_branch):
        head = _roi_head(image_branch)
        samples, rpn = _roi_batch()
        x = (torch.randn(2, 4, 16, 16), )
        seen = []
        head.bbox_roi_extractor.register_forward_hook(
            lambda m, args, out: seen.append(args[1].clone()))
        return SimpleNamespace(head=head, samples=samples, rpn=rpn, x=x,
                               seen=seen)

    return make


def test_one_batch_bn_over_sampled_rois_and_proposals(roi_batch):
    b = roi_batch('shared')
    head, samples, rpn, x, seen = b.head, b.samples, b.rpn, b.x, b.seen
    torch.manual_seed(1)
    losses = head.loss(x, rpn, samples)
    assert set(losses) >= {'loss_cls', 'loss_bbox', 'loss_image'}
    assert len(seen) == 1  # one pass through the box head
    rois = seen[0]
    # the last rows are the proposals of both images, in order
    proposals = torch.cat([
        torch.cat([torch.full((len(s.clip_proposals), 1), float(i)),
                   s.clip_proposals.bboxes], 1)
        for i, s in enumerate(samples)])
    assert torch.equal(rois[-len(proposals):], proposals)
    num_sampled = len(rois) - len(proposals)
    assert num_sampled >= 2
    # independently: the conv's and the fc's outputs over the whole batch
    bbox_head = head.bbox_head
    conv_module = bbox_head.shared_convs[0]
    with torch.no_grad():
        feats = head.bbox_roi_extractor(x, rois)
        conv_out = conv_module.conv(feats)
        fc_out = bbox_head.shared_fcs[0](
            conv_module.activate(conv_module.norm(conv_out)).flatten(1))
    stat = conv_out.mean(dim=(0, 2, 3))
    torch.testing.assert_close(conv_module.norm.running_mean, stat)
    torch.testing.assert_close(bbox_head.shared_fc_norms[0].running_mean,
                               fc_out.mean(0))
    # two passes (sampled RoIs, then proposals) would leave another one
    sampled_only = conv_out[:num_sampled].mean(dim=(0, 2, 3))
    proposals_only = conv_out[num_sampled:].mean(dim=(0, 2, 3))
    for other in (sampled_only, proposals_only):
        assert (other - stat).abs().max() > 1e-3


def test_one_batch_image_loss_equals_the_formula(roi_batch):
    b = roi_batch('shared')
    head, samples, x, seen = b.head, b.samples, b.x, b.seen
    losses = head.loss(x, b.rpn, samples)
    # 0.5 * mean over the proposals of the L1 distance between the region
    # embeddings of the one batch (training-mode BN: its own statistics)
    # and the normalised CLIP embeddings
    rois, embeds = head.distill_rois(x, samples)
    with torch.no_grad():
        text, _, _ = head.bbox_head.forward_embeds(
            head.bbox_roi_extractor(x, seen[0]))
    region = text[-len(rois):]
    expected = 0.5 * (region - F.normalize(embeds, dim=1)).abs().sum(1) \
        .mean()
    assert losses['loss_image'].item() == pytest.approx(expected.item(),
                                                        rel=1e-5)


def test_ensemble_tower_keeps_its_own_batch(roi_batch):
    b = roi_batch('tower')
    losses = b.head.loss(b.x, b.rpn, b.samples)
    assert 'loss_image' in losses
    # sampled RoIs, then the proposals
    assert len(b.seen[1]) == 5 and len(b.seen[0]) > 0


# -- RPN head: shared convs, a BN per level ---------------------------------
def test_rpn_head_norm_per_level():
    from mmovl.models import ViLDRPNHead
    torch.manual_seed(0)
    head = ViLDRPNHead(
        4, feat_channels=4, num_convs=2, num_levels=2,
        norm_cfg=dict(type='BN', momentum=1.0),
        anchor_generator=dict(type='AnchorGenerator', scales=[8],
                              ratios=[0.5, 1.0, 2.0], strides=[4, 8]))
    head.init_weights()
    assert len(head.rpn_convs) == 2 and len(head.rpn_norms) == 2
    x = (torch.randn(2, 4, 8, 8), 3 + torch.randn(2, 4, 4, 4))
    cls, reg = head(x)
    assert [c.shape[1] for c in cls] == [3, 3]
    assert [r.shape[1] for r in reg] == [12, 12]
    for level in range(2):
        with torch.no_grad():
            out = head.rpn_convs[0](x[level])
        torch.testing.assert_close(
            head.rpn_norms[level][0].running_mean, out.mean(dim=(0, 2, 3)))
    assert not torch.allclose(head.rpn_norms[0][0].running_mean,
                              head.rpn_norms[1][0].running_mean)
    with pytest.raises(ValueError, match='2 levels'):
        head(x + x[:1])


# -- Huber box losses and the zero logits -----------------------------------
@pytest.mark.parametrize('delta', [1 / 9, 1.0])
def test_huber_as_smooth_l1_hand_computed(delta):
    from mmdet.models.losses import SmoothL1Loss
    pred = torch.tensor([[0.05, -0.3, 2.0, 0.0]])
    target = torch.zeros(1, 4)
    got = SmoothL1Loss(beta=delta, loss_weight=delta, reduction='sum')(
        pred, target)
    # Huber(delta): 0.5 x^2 inside |x| <= delta, delta (|x| - delta / 2)
    # outside; by hand for 0.05, 0.3, 2.0 and 0
    if delta == 1.0:
        hand = 0.5 * 0.05**2 + 0.5 * 0.3**2 + (2.0 - 0.5)
    else:
        hand = 0.5 * 0.05**2 + (0.3 - 1 / 18) / 9 + (2.0 - 1 / 18) / 9
    assert got.item() == pytest.approx(hand, rel=1e-6)


def test_vild_config_is_the_authors(lvis_cfg):
    cfg = lvis_cfg
    model = cfg.model
    norm = dict(type='SyncBN', requires_grad=True, momentum=0.003, eps=1e-4)
    bb = model.backbone
    assert (bb.frozen_stages, bb.norm_eval, bb.init_cfg, bb.norm_cfg) == \
        (-1, False, None, norm)
    assert (model.neck.norm_cfg, model.neck.no_norm_on_lateral,
            model.neck.add_extra_convs) == (norm, True, 'on_output')
    rpn = model.rpn_head
    assert (rpn.num_convs, rpn.norm_cfg) == (2, norm)
    assert (rpn.loss_bbox.beta, rpn.loss_bbox.loss_weight) == (1 / 9, 1 / 9)
    box = model.roi_head.bbox_head
    assert (box.num_shared_convs, box.num_shared_fcs, box.norm_cfg,
            box.norm_fcs) == (4, 2, norm, True)
    assert (box.loss_bbox.beta, box.loss_bbox.loss_weight) == (1.0, 1.0)
    assert model.test_cfg.rcnn.score_thr == 0.0
    assert model.test_cfg.rcnn.max_per_img == 300
    assert model.data_preprocessor.pad_size_divisor == 1024
    assert cfg.test_dataloader.dataset.pipeline[1].scale == (1024, 1024)
    assert 'LVISV1OVDataset' in str(cfg.train_dataloader.dataset.type)
    assert cfg.optim_wrapper.paramwise_cfg == dict(norm_decay_mult=0.0,
                                                   bias_decay_mult=0.0)


def test_zero_logits_join_the_training_softmax():
    from mmovl.models import ViLDBBoxHead
    torch.manual_seed(0)
    head = ViLDBBoxHead(in_channels=4, roi_feat_size=7, fc_out_channels=8,
                        embed_dim=8, num_classes=3, num_zero_logits=5)
    head.init_weights()
    head.set_class_embeddings(F.normalize(torch.randn(3, 8), dim=1))
    head.train()
    text = F.normalize(torch.randn(4, 8), dim=1)
    logits = head.train_logits(text)
    assert logits.shape == (4, 3 + 1 + 1)
    labels = torch.tensor([0, 2, 3, 3])  # 3 is the background
    ce = F.cross_entropy(logits, labels, reduction='none')
    # by hand: softmax over the classes, the background and 5 zero logits
    plain = head.text_logits(text)
    hand = -plain[torch.arange(4), labels] + torch.log(
        plain.exp().sum(1) + 5 * torch.exp(torch.tensor(0.)))
    torch.testing.assert_close(ce, hand)
