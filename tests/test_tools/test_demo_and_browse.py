# Copyright (c) mmovl contributors. All rights reserved.
"""demo/image_demo.py and tools/analysis_tools/browse_dataset.py, run
in-process (a subprocess would spend most of the test importing mmovl)."""
import json
import os
import os.path as osp
import runpy
import sys
from unittest import mock

import mmcv
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmpretrain.registry import MODELS

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

MKT_CONFIG = '''
from mmengine.config import read_base

with read_base():
    from mmovl.configs.mkt.mkt_toy_vit_p8_10e_toy import *

model.backbone.checkpoint = {teacher!r}
model.teacher.checkpoint = {teacher!r}
val_dataloader.dataset.data_root = {root!r}
'''

DET_CONFIG = '''
from mmcv.transforms import LoadImageFromFile
from mmdet.datasets import CocoDataset
from mmdet.datasets.transforms import LoadAnnotations, PackDetInputs

from mmovl.datasets import LABELS

default_scope = 'mmdet'
val_dataloader = dict(
    dataset=dict(
        type=CocoDataset,
        data_root={root!r},
        ann_file='annotations/instances_val.json',
        data_prefix=dict(img='val/'),
        metainfo=dict(classes=LABELS),
        test_mode=True,
        pipeline=[
            dict(type=LoadImageFromFile),
            dict(type=LoadAnnotations, with_bbox=True),
            dict(type=PackDetInputs),
        ]))
'''

pytestmark = pytest.mark.usefixtures('one_thread')


def run_script(path, *args):
    with mock.patch.object(sys, 'argv', [path, *args]):
        runpy.run_path(osp.join(REPO, path), run_name='__main__')


def _changed(drawn, plain):
    return np.abs(drawn.astype(int) - plain.astype(int)).sum(-1) > 60


def test_image_demo_prints_ranks_and_writes_pictures(
        tmp_path, tiny_world, random_toy_teacher, capsys):
    cfg_path = tmp_path / 'mkt.py'
    cfg_path.write_text(
        MKT_CONFIG.format(teacher=random_toy_teacher, root=tiny_world))
    model = MODELS.build(Config.fromfile(str(cfg_path)).model)
    ckpt = str(tmp_path / 'mkt.pth')
    torch.save({'meta': {}, 'state_dict': model.state_dict()}, ckpt)

    images = [osp.join(tiny_world, 'val', f) for f in ('000000.png',
                                                       '000004.png')]
    out = tmp_path / 'out'
    run_script('demo/image_demo.py', *images, str(cfg_path), ckpt,
               '--labels', 'red circle, blue square,green cross,purple star',
               '--topk', '3', '--out-dir', str(out), '--resize', '128')

    # what the model itself scores for these images and labels
    vocab = ['red circle', 'blue square', 'green cross', 'purple star']
    model.set_vocabulary(vocab)
    model.eval()
    lines = capsys.readouterr().out.splitlines()
    for image in images:
        at = lines.index(image)
        printed = [line.split('. ', 1)[1].rsplit(None, 1)
                   for line in lines[at + 1:at + 4]]
        bgr = torch.from_numpy(mmcv.imread(image)).permute(2, 0, 1)
        with torch.no_grad():
            score = model.test_step(dict(inputs=[bgr]))[0].pred_score
        best = torch.argsort(score, descending=True, stable=True)[:3]
        assert [n.strip() for n, _ in printed] == [vocab[j] for j in best]
        np.testing.assert_allclose([float(s) for _, s in printed],
                                   score[best].numpy(), atol=1e-4)

    assert sorted(os.listdir(out)) == ['000000.png', '000004.png']
    drawn = mmcv.imread(str(out / '000004.png'))
    assert drawn.shape == (128, 128, 3)
    plain = mmcv.imresize(mmcv.imread(images[1]), (128, 128))
    changed = _changed(drawn, plain)
    assert changed[:25, :50].mean() > 0.3  # the labels' text box
    assert changed[70:, 70:].mean() < 0.02


def test_browse_classification(tmp_path, tiny_world, random_toy_teacher):
    cfg_path = tmp_path / 'mkt.py'
    cfg_path.write_text(
        MKT_CONFIG.format(teacher=random_toy_teacher, root=tiny_world))
    out = tmp_path / 'browse'
    run_script('tools/analysis_tools/browse_dataset.py', str(cfg_path),
               '--phase', 'val', '--output-dir', str(out),
               '--max-samples', '4')
    assert sorted(os.listdir(out)) == [f'00000{i}.png' for i in range(4)]
    drawn = mmcv.imread(str(out / '000002.png'))
    plain = mmcv.imresize(
        mmcv.imread(osp.join(tiny_world, 'val', '000002.png')), (256, 256))
    assert drawn.shape == plain.shape
    changed = _changed(drawn, plain)
    assert changed[:30, :100].mean() > 0.3  # 'Ground truth: ...'
    assert changed[150:, 150:].mean() < 0.02


def test_browse_detection_draws_the_boxes(tmp_path, tiny_world):
    cfg_path = tmp_path / 'det.py'
    cfg_path.write_text(DET_CONFIG.format(root=tiny_world))
    out = tmp_path / 'browse'
    run_script('tools/analysis_tools/browse_dataset.py', str(cfg_path),
               '--phase', 'val', '--output-dir', str(out),
               '--max-samples', '2', '--resize', '128')
    assert sorted(os.listdir(out)) == ['000000.png', '000001.png']

    ann = json.load(open(osp.join(tiny_world, 'annotations',
                                  'instances_val.json')))
    image_id = ann['images'][1]['id']
    file_name = ann['images'][1]['file_name']
    drawn = mmcv.imread(str(out / file_name))
    plain = mmcv.imresize(
        mmcv.imread(osp.join(tiny_world, 'val', file_name)), (128, 128))
    changed = _changed(drawn, plain)
    for a in ann['annotations']:
        if a['image_id'] != image_id:
            continue
        x, y, w, h = (round(v * 2) for v in a['bbox'])  # 64 -> 128 px
        left_edge = changed[y + h // 4:y + 3 * h // 4, max(x - 1, 0):x + 2]
        assert left_edge.any(axis=1).mean() > 0.9, a
    # far from every box nothing is drawn
    boxes = np.zeros((128, 128), bool)
    for a in ann['annotations']:
        if a['image_id'] == image_id:
            x, y, w, h = (round(v * 2) for v in a['bbox'])
            boxes[max(y - 12, 0):y + h + 4, max(x - 4, 0):x + w + 40] = True
    assert changed[~boxes].mean() < 0.01


def test_browse_needs_somewhere_to_draw(tmp_path, tiny_world):
    cfg_path = tmp_path / 'det.py'
    cfg_path.write_text(DET_CONFIG.format(root=tiny_world))
    with pytest.raises(SystemExit, match='--output-dir'):
        run_script('tools/analysis_tools/browse_dataset.py', str(cfg_path))
