# Copyright (c) mmovl contributors. All rights reserved.
"""OpenVocabDetInferencer on a toy ViLD checkpoint: its detections are the
model's own test_step detections for the same images and vocabulary, the
pictures show the boxes, and bad input fails with an error that names it."""
import json
import os
import shutil
import os.path as osp
import re
import runpy
import sys
from unittest import mock

import mmcv
import numpy as np
import pytest
import torch
from mmdet.registry import DATASETS, MODELS
from mmdet.structures import DetDataSample
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import DefaultScope, init_default_scope
from mmengine.runner.checkpoint import save_checkpoint
from mmengine.structures import InstanceData

from mmovl.apis import OpenVocabDetInferencer

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
VILD = osp.join(REPO, 'mmovl/configs/vild/vild_toy_r18_fpn_toy.py')
MKT = osp.join(REPO, 'mmovl/configs/mkt/mkt_toy_vit_p8_10e_toy.py')
# What the checkpoint says it was trained on (the base classes).
TRAINED = ('red circle', 'blue square')
# An open vocabulary: not the training classes' order, unseen labels, a
# name the toy world never had.
VOCAB = ['blue square', 'purple star', 'red circle', 'orange moon']
# A random detector scores every class near zero; keep all its boxes so
# that there is something to compare.
DEMO_CONFIG = '''
from mmengine.config import read_base

with read_base():
    from mmovl.configs.vild.vild_toy_r18_fpn_toy import *

model.teacher.checkpoint = {teacher!r}
model.test_cfg.rcnn.score_thr = 0.0
'''

pytestmark = pytest.mark.usefixtures('one_thread')


@pytest.fixture(scope='module')
def vild(tmp_path_factory, random_toy_teacher, tiny_world):
    """(config, checkpoint, model): toy ViLD-ensemble weights moved away from
    what the config builds, so that detections match only if loaded; saved
    as mmengine saves them, with the training classes in the meta."""
    cfg = Config.fromfile(VILD)
    cfg.model.teacher.checkpoint = random_toy_teacher
    cfg.model.test_cfg.rcnn.score_thr = 0.0
    cfg.test_dataloader.dataset.data_root = tiny_world
    init_default_scope('mmdet')
    torch.manual_seed(1)
    model = MODELS.build(cfg.model)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    path = str(tmp_path_factory.mktemp('ckpt') / 'vild.pth')
    save_checkpoint(
        dict(meta=dict(dataset_meta=dict(classes=TRAINED)),
             state_dict=model.state_dict()), path)
    return cfg, path, model.eval()


def _reference(model, cfg, vocabulary, novel, num_images, batch_size=1):
    """The model's own test path: the config's dataset and pipeline,
    mmengine's collate, model.test_step; batched as the inferencer is (a
    batch's padding and its convolutions' summation order move the last
    digits of a score)."""
    ds = DATASETS.build(cfg.test_dataloader.dataset)
    model.set_vocabulary(vocabulary, novel)
    samples = []
    with torch.no_grad():
        for start in range(0, num_images, batch_size):
            stop = min(start + batch_size, num_images)
            samples += model.test_step(
                pseudo_collate([ds[i] for i in range(start, stop)]))
    paths = [ds.get_data_info(i)['img_path'] for i in range(num_images)]
    return paths, [s.pred_instances for s in samples]


def _assert_same(predictions, expected, vocabulary):
    assert len(predictions) == len(expected)
    for pred, ref in zip(predictions, expected):
        assert len(ref) > 0
        assert pred['labels'] == ref.labels.tolist()
        assert pred['names'] == [vocabulary[i] for i in pred['labels']]
        np.testing.assert_allclose(pred['scores'], ref.scores.numpy(),
                                   rtol=1e-5, atol=1e-9)
        np.testing.assert_allclose(pred['bboxes'], ref.bboxes.numpy(),
                                   rtol=1e-5, atol=1e-4)


def test_detections_match_model_test_step(vild):
    cfg, ckpt, model = vild
    inferencer = OpenVocabDetInferencer(
        cfg, ckpt, vocabulary=VOCAB, show_progress=False)
    # names the checkpoint was not trained on are novel
    novel = ['purple star', 'orange moon']
    assert inferencer.base_classes == TRAINED
    assert inferencer.novel_classes == novel
    assert inferencer.model.roi_head.bbox_head.novel_mask.tolist() == [
        False, True, False, True]
    paths, expected = _reference(model, cfg, VOCAB, novel, 3, batch_size=2)
    out = inferencer(paths, batch_size=2)
    _assert_same(out['predictions'], expected, VOCAB)
    assert out['visualization'] == []  # nothing asked to draw

    # another vocabulary with the call, none of it novel
    other = ['green cross', 'red circle', 'yellow triangle']
    _, expected = _reference(model, cfg, other, None, 3, batch_size=3)
    out = inferencer(paths, vocabulary=other, novel=[], batch_size=3)
    assert inferencer.classes == other and inferencer.novel_classes == []
    _assert_same(out['predictions'], expected, other)
    assert inferencer.model.dataset_meta['classes'] == tuple(other)
    assert inferencer.visualizer.dataset_meta['classes'] == tuple(other)


def test_arrays_folders_and_the_recorded_classes(vild, tmp_path):
    cfg, ckpt, model = vild
    # no vocabulary: the classes the checkpoint recorded, all of them base
    inferencer = OpenVocabDetInferencer(cfg, ckpt, show_progress=False)
    assert inferencer.classes == list(TRAINED)
    assert inferencer.novel_classes == []
    paths, expected = _reference(model, cfg, list(TRAINED), None, 2)
    by_path = inferencer(paths[::-1])['predictions']
    # a file's prediction says which file it is of; an array's cannot
    assert [p.pop('img_path') for p in by_path] == paths[::-1]
    _assert_same(by_path, expected[::-1], TRAINED)
    # BGR arrays, as mmcv / OpenCV read them
    by_array = inferencer([mmcv.imread(p) for p in paths[::-1]])
    assert by_array['predictions'] == by_path
    # a folder: its images sorted by name, other files skipped
    folder = tmp_path / 'images'
    folder.mkdir()
    for p in paths:
        os.symlink(p, folder / osp.basename(p))
    (folder / 'notes.txt').write_text('not an image')
    by_folder = inferencer(str(folder))['predictions']
    assert [p.pop('img_path') for p in by_folder] == [
        str(folder / osp.basename(p)) for p in paths]
    assert by_folder == by_path[::-1]

    # a checkpoint that recorded nothing: every name is novel ...
    bare = str(tmp_path / 'bare.pth')
    torch.save(model.state_dict(), bare)
    inferencer = OpenVocabDetInferencer(
        cfg, bare, vocabulary=VOCAB, show_progress=False)
    assert inferencer.base_classes is None
    assert inferencer.novel_classes == VOCAB
    # ... unless told which were trained on
    inferencer = OpenVocabDetInferencer(
        cfg, bare, vocabulary=VOCAB, base_classes=['purple star'],
        show_progress=False)
    assert inferencer.novel_classes == ['blue square', 'red circle',
                                        'orange moon']
    with pytest.raises(ValueError, match='no classes to fall back to'):
        OpenVocabDetInferencer(cfg, bare, show_progress=False)


def test_pictures_show_the_boxes_above_the_threshold(vild, tiny_world,
                                                     tmp_path):
    cfg, ckpt, _ = vild
    inferencer = OpenVocabDetInferencer(
        cfg, ckpt, vocabulary=VOCAB, show_progress=False)
    path = osp.join(tiny_world, 'val', '000002.png')
    # a hand-made prediction: one box above the threshold, one below
    pred = DetDataSample()
    pred.pred_instances = InstanceData(
        bboxes=torch.tensor([[8., 8., 40., 40.], [44., 44., 60., 60.]]),
        scores=torch.tensor([0.9, 0.1]),
        labels=torch.tensor([0, 1]))
    out = str(tmp_path / 'out')
    pictures = inferencer.visualize([path], [pred], img_out_dir=out,
                                    pred_score_thr=0.5, resize=128)
    assert os.listdir(out) == ['vis']
    assert os.listdir(osp.join(out, 'vis')) == ['000002.png']  # no tmp
    drawn = mmcv.imread(osp.join(out, 'vis', '000002.png'))
    np.testing.assert_array_equal(drawn, pictures[0][..., ::-1])
    assert drawn.shape == (128, 128, 3)
    plain = mmcv.imresize(mmcv.imread(path), (128, 128))
    changed = np.abs(drawn.astype(int) - plain.astype(int)).sum(-1) > 60
    # the box, scaled x2: its bottom and right edges are drawn ...
    assert changed[77:83, 30:76].any(axis=0).all()
    assert changed[32:76, 77:83].any(axis=1).all()
    # ... its inside below the name is not; the low box is not drawn
    assert changed[45:74, 22:74].mean() < 0.02
    assert changed[86:124, 86:124].mean() < 0.02
    # the name is written at the box's top-left corner
    assert changed[18:28, 18:60].mean() > 0.2
    # resizing the picture leaves the prediction in image pixels
    assert pred.pred_instances.bboxes[0].tolist() == [8., 8., 40., 40.]

    # through a call: pictures and json predictions (with the names)
    result = inferencer(path, out_dir=out, no_save_pred=False,
                        return_vis=True, resize=128)
    assert sorted(os.listdir(out)) == ['preds', 'vis']
    with open(osp.join(out, 'preds', '000002.json')) as f:
        saved = json.load(f)
    assert saved == json.loads(json.dumps(result['predictions'][0]))
    assert saved['names'] == [VOCAB[i] for i in saved['labels']]
    assert result['visualization'][0].shape == (128, 128, 3)
    plain = inferencer(path)['predictions'][0]
    assert result['predictions'][0]['bboxes'] == plain['bboxes']
    assert saved['img_path'] == path  # which input it is of


def test_inputs_with_the_same_name_keep_their_own_outputs(vild, tiny_world,
                                                          tmp_path):
    """d1/x.png and d2/x.png wrote one x.json and one picture."""
    cfg, ckpt, _ = vild
    inferencer = OpenVocabDetInferencer(
        cfg, ckpt, vocabulary=VOCAB, show_progress=False)
    paths = []
    for folder, image in (('d1', '000002.png'), ('d2', '000003.png')):
        os.makedirs(tmp_path / folder)
        paths.append(str(tmp_path / folder / 'x.png'))
        shutil.copy(osp.join(tiny_world, 'val', image), paths[-1])
    out = str(tmp_path / 'out')
    result = inferencer(paths, out_dir=out, no_save_pred=False)
    assert sorted(os.listdir(osp.join(out, 'preds'))) == [
        'd1__x.json', 'd2__x.json']
    assert sorted(os.listdir(osp.join(out, 'vis'))) == [
        'd1__x.png', 'd2__x.png']
    for path, pred, name in zip(paths, result['predictions'],
                                ('d1__x', 'd2__x')):
        with open(osp.join(out, 'preds', name + '.json')) as f:
            saved = json.load(f)
        assert saved['img_path'] == path
        assert saved['bboxes'] == json.loads(json.dumps(pred['bboxes']))


def test_cache_dir_encodes_a_vocabulary_once(vild, tmp_path):
    from mmovl.models import CLIPTeacher
    cfg, ckpt, _ = vild
    cache = str(tmp_path / 'cache')
    with mock.patch.object(CLIPTeacher, '_encode_prompts', autospec=True,
                           side_effect=CLIPTeacher._encode_prompts) as enc:
        first = OpenVocabDetInferencer(cfg, ckpt, vocabulary=VOCAB,
                                       cache_dir=cache, show_progress=False)
        assert enc.call_count == 1
        second = OpenVocabDetInferencer(cfg, ckpt, vocabulary=VOCAB,
                                        cache_dir=cache, show_progress=False)
        assert enc.call_count == 1  # read from the disk cache
    assert len(os.listdir(cache)) == 1
    torch.testing.assert_close(first.model.roi_head.bbox_head.class_embeds,
                               second.model.roi_head.bbox_head.class_embeds)


def test_vocabulary_errors(vild, tiny_world):
    cfg, ckpt, _ = vild
    inferencer = OpenVocabDetInferencer(
        cfg, ckpt, vocabulary=VOCAB, show_progress=False)
    image = osp.join(tiny_world, 'val', '000000.png')
    with pytest.raises(ValueError, match='empty'):
        inferencer(image, vocabulary=[])
    with pytest.raises(ValueError, match=r"duplicate names: \['red circle'\]"):
        inferencer(image, vocabulary=['red circle', 'cat', ' red circle'])
    with pytest.raises(ValueError, match=r'Novel names not in the '
                       r"vocabulary: \['zebra'\]"):
        inferencer(image, vocabulary=['red circle', 'cat'], novel=['zebra'])
    with pytest.raises(TypeError, match='grounding'):
        inferencer(image, texts='red circle . cat')
    # a failed change keeps the vocabulary that was set
    assert inferencer.classes == VOCAB
    assert inferencer.model.vocabulary == tuple(VOCAB)


def test_image_errors_name_the_input(vild, tmp_path):
    cfg, ckpt, _ = vild
    inferencer = OpenVocabDetInferencer(
        cfg, ckpt, vocabulary=VOCAB, show_progress=False)
    bad = tmp_path / 'broken.png'
    bad.write_bytes(b'not a png at all')
    with pytest.raises(ValueError, match=f'Cannot read image {bad}'):
        inferencer(str(bad))
    missing = str(tmp_path / 'nowhere.png')
    with pytest.raises(FileNotFoundError, match=missing):
        inferencer(missing)
    with pytest.raises(ValueError, match=r'Input 1: .*\(64, 64\)'):
        inferencer([np.zeros((64, 64, 3), np.uint8),
                    np.zeros((64, 64), np.uint8)])
    empty = tmp_path / 'no_images'
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match='No images'):
        inferencer(str(empty))


def test_checkpoint_or_config_of_the_wrong_kind(vild, random_toy_teacher,
                                                tmp_path):
    from mmpretrain.registry import MODELS as CLS_MODELS
    cfg, _, _ = vild
    mkt_cfg = Config.fromfile(MKT)
    mkt_cfg.model.backbone.checkpoint = random_toy_teacher
    mkt_cfg.model.teacher.checkpoint = random_toy_teacher
    mkt = str(tmp_path / 'mkt.pth')
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        state = CLS_MODELS.build(mkt_cfg.model).state_dict()
    save_checkpoint(dict(meta={}, state_dict=state), mkt)
    # a classifier's checkpoint for the detector
    with pytest.raises(ValueError, match=rf'{mkt} does not fit ViLD.*'
                       r"weights are under \['backbone', 'head'\]"):
        OpenVocabDetInferencer(cfg, mkt, vocabulary=VOCAB)
    # a classifier's config
    with pytest.raises(TypeError, match='MKT is not an open-vocabulary '
                       'detector'):
        OpenVocabDetInferencer(mkt_cfg, mkt, vocabulary=VOCAB)
    # a closed-vocabulary detector
    closed = Config(dict(model=dict(type='FasterRCNN')))
    with pytest.raises(TypeError, match='FasterRCNN is not an open'):
        OpenVocabDetInferencer(closed, vocabulary=VOCAB)
    with pytest.raises(FileNotFoundError, match='nowhere.py'):
        OpenVocabDetInferencer(str(tmp_path / 'nowhere.py'))


def test_demo_prints_detections_and_writes_pictures(vild, random_toy_teacher,
                                                    tiny_world, tmp_path,
                                                    capsys):
    cfg, ckpt, model = vild
    cfg_path = tmp_path / 'vild.py'
    cfg_path.write_text(DEMO_CONFIG.format(teacher=random_toy_teacher))
    cfg = Config.fromfile(str(cfg_path))
    cfg.test_dataloader.dataset.data_root = tiny_world
    vocab = ['red circle', 'purple star', 'green cross']
    # novel: the names the checkpoint was not trained on
    paths, expected = _reference(model, cfg, vocab,
                                 ['purple star', 'green cross'], 2)
    # a threshold between the first image's 3rd and 4th scores
    thr = float(expected[0].scores[2:4].mean())
    out = tmp_path / 'out'
    argv = ['demo/det_demo.py', *paths, str(cfg_path), ckpt, '--labels',
            'red circle, purple star,green cross', '--score-thr', repr(thr),
            '--out-dir', str(out), '--resize', '128']
    with mock.patch.object(sys, 'argv', argv):
        runpy.run_path(osp.join(REPO, 'demo/det_demo.py'),
                       run_name='__main__')

    lines = capsys.readouterr().out.splitlines()
    for path, ref in zip(paths, expected):
        keep = ref.scores >= thr
        at = lines.index(f'{path}: {int(keep.sum())} detections')
        rows = [re.fullmatch(r'\s+(.+?)\s+(\d\.\d{4})\s+\[(.*)\]', line)
                for line in lines[at + 1:at + 1 + int(keep.sum())]]
        assert [r[1] for r in rows] == [vocab[i] for i in ref.labels[keep]]
        np.testing.assert_allclose([float(r[2]) for r in rows],
                                   ref.scores[keep].numpy(), atol=5.1e-5)
        np.testing.assert_allclose(
            [[float(v) for v in r[3].split(',')] for r in rows],
            ref.bboxes[keep].numpy(), atol=0.051)
    assert lines.count(f'{paths[0]}: 3 detections') == 1
    assert sorted(os.listdir(out / 'vis')) == ['000000.png', '000001.png']
    drawn = mmcv.imread(str(out / 'vis' / '000000.png'))
    assert drawn.shape == (128, 128, 3)
    plain = mmcv.imresize(mmcv.imread(paths[0]), (128, 128))
    assert (drawn != plain).any()  # three boxes drawn
