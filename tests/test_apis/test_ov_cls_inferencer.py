# Copyright (c) mmovl contributors. All rights reserved.
"""OpenVocabClsInferencer on toy MKT / CPRFL / UniCL checkpoints: its scores
are the model's own test_step scores for the same images and vocabulary, and
bad input fails with an error that names it."""
import os
import os.path as osp
from unittest import mock

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import default_collate
from mmpretrain.registry import MODELS

from mmovl.apis import OpenVocabClsInferencer, read_vocabulary
from mmovl.datasets import CocoMultiLabelDataset
from mmovl.models import CLIPTeacher

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = {
    'mkt': 'mmovl/configs/mkt/mkt_toy_vit_p8_10e_toy.py',
    'cprfl': 'mmovl/configs/cprfl/cprfl_toy_vit_p8_10e_toy_lt.py',
    'unicl': 'mmovl/configs/unicl/unicl_toy_vit_p8_10e_toy.py',
}
# An open vocabulary: not the training classes, not in their order, with an
# unseen label and a name the toy world never had.
VOCAB = ['blue square', 'red circle', 'purple star', 'yellow triangle',
         'green cross']

pytestmark = pytest.mark.usefixtures('one_thread')


def _config(kind, teacher, root):
    cfg = Config.fromfile(osp.join(REPO, CONFIGS[kind]))
    if 'teacher' in cfg.model:
        cfg.model.backbone.checkpoint = teacher
        cfg.model.teacher.checkpoint = teacher
    cfg.test_dataloader.dataset.data_root = root
    return cfg


@pytest.fixture(scope='module')
def checkpoints(tmp_path_factory, random_toy_teacher, tiny_world):
    """kind -> (config, checkpoint, perturbed model): weights moved away from
    what the config builds, so that scores match only if they are loaded."""
    out = {}
    folder = tmp_path_factory.mktemp('ckpts')
    for kind in CONFIGS:
        cfg = _config(kind, random_toy_teacher, tiny_world)
        torch.manual_seed(1)
        model = MODELS.build(cfg.model)
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.05 * torch.randn_like(p))
        path = str(folder / f'{kind}.pth')
        torch.save(
            dict(meta=dict(dataset_meta=dict(classes=('red circle',
                                                      'blue square'))),
                 state_dict=model.state_dict()), path)
        out[kind] = (cfg, path, model.eval())
    return out


def _reference_scores(model, cfg, vocabulary, num_images):
    """The model's own test path: the config's dataset and pipeline,
    mmengine's collate, model.test_step."""
    ds = CocoMultiLabelDataset(
        data_root=cfg.test_dataloader.dataset.data_root,
        ann_file='annotations/instances_val.json', data_prefix='val',
        pipeline=cfg.test_dataloader.dataset.pipeline)
    model.set_vocabulary(vocabulary)
    batch = default_collate([ds[i] for i in range(num_images)])
    with torch.no_grad():
        samples = model.test_step(batch)
    paths = [ds.get_data_info(i)['img_path'] for i in range(num_images)]
    return paths, np.stack([s.pred_score.numpy() for s in samples])


@pytest.mark.parametrize('kind', list(CONFIGS))
def test_scores_match_model_test_step(kind, checkpoints):
    cfg, ckpt, model = checkpoints[kind]
    inferencer = OpenVocabClsInferencer(cfg, ckpt, vocabulary=VOCAB)
    paths, expected = _reference_scores(model, cfg, VOCAB, 5)
    results = inferencer(paths, topk=3, batch_size=2)
    scores = np.stack([r['pred_scores'] for r in results])
    np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-6)
    for r, row in zip(results, expected):
        # ranking by a brute-force sort of the reference scores
        order = sorted(range(len(VOCAB)), key=lambda j: -row[j])[:3]
        assert r['labels'] == [VOCAB[j] for j in order]
        np.testing.assert_allclose(r['scores'], row[order], rtol=1e-5)
        assert r['pred_class'] == VOCAB[order[0]]

    # A new vocabulary with the call: scored as the model scores it.
    other = ['green cross', 'red circle', 'orange diamond']
    _, expected = _reference_scores(model, cfg, other, 5)
    results = inferencer(paths, vocabulary=other, topk=None)
    assert inferencer.classes == other
    np.testing.assert_allclose(
        np.stack([r['pred_scores'] for r in results]), expected, rtol=1e-5,
        atol=1e-6)
    assert all(len(r['labels']) == 3 for r in results)


def test_arrays_folders_and_default_vocabulary(checkpoints, tmp_path):
    import mmcv
    cfg, ckpt, _ = checkpoints['mkt']
    # no vocabulary: the classes the checkpoint stored
    inferencer = OpenVocabClsInferencer(cfg, ckpt)
    assert inferencer.classes == ['red circle', 'blue square']
    root = cfg.test_dataloader.dataset.data_root
    paths = [osp.join(root, 'val', f'00000{i}.png') for i in (3, 1)]
    by_path = inferencer(paths)
    # BGR arrays, as mmcv / OpenCV read them
    by_array = inferencer([mmcv.imread(p) for p in paths])
    for a, b in zip(by_path, by_array):
        np.testing.assert_array_equal(a['pred_scores'], b['pred_scores'])
    # a folder: its images sorted by name, other files skipped
    folder = tmp_path / 'images'
    folder.mkdir()
    for p in paths:
        os.symlink(p, folder / osp.basename(p))
    (folder / 'notes.txt').write_text('not an image')
    by_folder = inferencer(str(folder))
    assert len(by_folder) == 2
    np.testing.assert_array_equal(by_folder[0]['pred_scores'],
                                  by_path[1]['pred_scores'])  # 000001 first


def test_visualize_writes_pictures(checkpoints, tmp_path):
    cfg, ckpt, _ = checkpoints['cprfl']
    inferencer = OpenVocabClsInferencer(cfg, ckpt, vocabulary=VOCAB)
    root = cfg.test_dataloader.dataset.data_root
    path = osp.join(root, 'val', '000002.png')
    out = tmp_path / 'vis'
    inferencer(path, show_dir=str(out), resize=128, topk=2)
    import mmcv
    drawn = mmcv.imread(str(out / '000002.png'))
    assert drawn.shape == (128, 128, 3)
    plain = mmcv.imresize(mmcv.imread(path), (128, 128))
    diff = np.abs(drawn.astype(int) - plain.astype(int)).sum(-1) > 60
    # the text box sits in the top-left corner; the rest is the image
    assert diff[:30, :60].mean() > 0.3
    assert diff[64:, 64:].mean() < 0.02
    assert sorted(os.listdir(out)) == ['000002.png']  # no temporary left


def test_cache_dir_encodes_a_vocabulary_once(checkpoints, tmp_path):
    cfg, ckpt, _ = checkpoints['mkt']
    cache = str(tmp_path / 'cache')
    with mock.patch.object(CLIPTeacher, '_encode_prompts',
                           autospec=True,
                           side_effect=CLIPTeacher._encode_prompts) as enc:
        first = OpenVocabClsInferencer(cfg, ckpt, vocabulary=VOCAB,
                                       cache_dir=cache)
        assert enc.call_count == 1
        second = OpenVocabClsInferencer(cfg, ckpt, vocabulary=VOCAB,
                                        cache_dir=cache)
        assert enc.call_count == 1  # read from the disk cache
    assert len(os.listdir(cache)) == 1
    torch.testing.assert_close(first.model.label_embeds(),
                               second.model.label_embeds())


def test_vocabulary_errors(checkpoints, tmp_path):
    cfg, ckpt, _ = checkpoints['mkt']
    inferencer = OpenVocabClsInferencer(cfg, ckpt, vocabulary=VOCAB)
    with pytest.raises(ValueError, match='empty'):
        inferencer.set_vocabulary([])
    with pytest.raises(ValueError, match=r"duplicate names: \['red circle'\]"):
        inferencer('x.png', vocabulary=['red circle', 'blue', ' red circle'])
    with pytest.raises(ValueError, match='empty name at position 1'):
        read_vocabulary(['red circle', '  '])
    empty = tmp_path / 'empty.txt'
    empty.write_text('\n\n')
    with pytest.raises(ValueError, match=f'{empty}.*empty'):
        read_vocabulary(str(empty))
    dup = tmp_path / 'dup.txt'
    dup.write_text('cat\ndog\ncat\n')
    with pytest.raises(ValueError, match=f'{dup}.*cat'):
        read_vocabulary(str(dup))
    with pytest.raises(FileNotFoundError, match='missing.txt'):
        read_vocabulary(str(tmp_path / 'missing.txt'))
    # a failed change keeps the vocabulary that was set
    assert inferencer.classes == VOCAB
    assert read_vocabulary(['a ', 'b']) == ['a', 'b']
    with pytest.raises(ValueError, match='topk'):
        inferencer(osp.join(cfg.test_dataloader.dataset.data_root, 'val',
                            '000000.png'), topk=0)


def test_image_errors_name_the_input(checkpoints, tmp_path):
    cfg, ckpt, _ = checkpoints['mkt']
    inferencer = OpenVocabClsInferencer(cfg, ckpt, vocabulary=VOCAB)
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


@pytest.mark.parametrize('kind', list(CONFIGS))
def test_any_image_size_is_brought_to_the_model_input(kind, checkpoints):
    """A 640 x 480 photo (and a small, tall one) goes through the config's
    test pipeline: short side to 64, centre crop; the scores equal the
    model's on the resized-and-cropped picture computed by hand."""
    import cv2
    cfg, ckpt, model = checkpoints[kind]
    inferencer = OpenVocabClsInferencer(cfg, ckpt, vocabulary=VOCAB)
    rng = np.random.default_rng(0)
    big = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    tall = rng.integers(0, 256, (90, 40, 3), dtype=np.uint8)
    out = inferencer([big, tall], topk=None)
    assert len(out) == 2
    # By hand: the short side to 64 (bilinear, ResizeEdge's default), then
    # the centre 64 x 64.
    expected = []
    for img in (big, tall):
        h, w = img.shape[:2]
        scale = 64 / min(h, w)
        nw, nh = int(w * scale + 0.5), int(h * scale + 0.5)
        resized = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR)
        y0, x0 = (nh - 64) // 2, (nw - 64) // 2
        expected.append(resized[y0:y0 + 64, x0:x0 + 64])
    batch = dict(inputs=[torch.from_numpy(e.copy()).permute(2, 0, 1)
                         for e in expected],
                 data_samples=None)
    model.set_vocabulary(VOCAB)
    with torch.no_grad():
        samples = model.test_step(batch)
    for pred, sample in zip(out, samples):
        np.testing.assert_allclose(pred['pred_scores'],
                                   sample.pred_score.numpy(), atol=1e-5)


def test_checkpoint_of_the_wrong_kind(checkpoints, tmp_path):
    cfg, _, _ = checkpoints['mkt']
    # a UniCL checkpoint for an MKT config
    with pytest.raises(ValueError, match=r'does not fit MKT.*\'clip\''):
        OpenVocabClsInferencer(cfg, checkpoints['unicl'][1], vocabulary=VOCAB)
    # a CPRFL checkpoint: same backbone, another head (17 parameters) and
    # its trained text tower (29)
    with pytest.raises(ValueError,
                       match=r'does not fit MKT as its config builds it: '
                       r'missing keys: head\.proj\.weight; '
                       r'unexpected keys: head\.prompt_init.* and 41 more'):
        OpenVocabClsInferencer(cfg, checkpoints['cprfl'][1], vocabulary=VOCAB)
    # a detector's state dict
    det = str(tmp_path / 'detector.pth')
    torch.save({'state_dict': {
        'backbone.conv1.weight': torch.zeros(64, 3, 7, 7),
        'rpn_head.rpn_conv.weight': torch.zeros(256, 256, 3, 3),
        'roi_head.bbox_head.fc_cls.weight': torch.zeros(81, 1024)}}, det)
    with pytest.raises(ValueError, match=f'{det} does not fit MKT.*rpn_head'):
        OpenVocabClsInferencer(cfg, det, vocabulary=VOCAB)
    # not a checkpoint at all
    junk = tmp_path / 'junk.pth'
    junk.write_bytes(b'\x00' * 10)
    with pytest.raises(RuntimeError, match=str(junk)):
        OpenVocabClsInferencer(cfg, str(junk), vocabulary=VOCAB)
    # a closed-vocabulary classifier
    linear = Config.fromfile(
        osp.join(REPO, 'mmovl/configs/baseline/vit_tiny_p8_linear_10e_toy.py'))
    with pytest.raises(TypeError, match='not an open-vocabulary classifier'):
        OpenVocabClsInferencer(linear, vocabulary=VOCAB)
