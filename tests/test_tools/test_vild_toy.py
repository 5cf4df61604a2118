# Copyright (c) mmovl contributors. All rights reserved.
"""ViLD end to end on a tiny toy world, the recipe of bench/bench_vild_toy.py
with the shipped toy configs: ViLD-text trains (tools/train.py), its RPN's
proposals are embedded by the teacher (tools/misc/precompute_vild_embeds.py),
ViLD trains on them, and tools/test.py scores all 30 names with the text
and the ensemble scores. (A few minutes on 2 busy cores: five tool runs,
each paying the imports.)"""
import glob
import json
import math
import os.path as osp

from mmovl.utils import safe_torch_load
from mmovl.embeds.proposal_store import ProposalEmbedStore

OVERRIDES = '''
toy_teacher = {teacher!r}
model.teacher.checkpoint = toy_teacher
for _loader in (train_dataloader, val_dataloader, test_dataloader):
    _loader.update(batch_size=8, num_workers=0, persistent_workers=False)
    _loader.dataset.data_root = {root!r}
val_evaluator.ann_file = {root!r} + '/annotations/instances_val.json'
test_evaluator = val_evaluator
train_cfg.update(max_epochs=1, val_interval=1)
'''
TEXT = '''
from mmengine.config import read_base

with read_base():
    from mmovl.configs.vild.vild_text_toy_r18_fpn_toy import *
''' + OVERRIDES
FULL = '''
from mmengine.config import read_base

with read_base():
    from mmovl.configs.vild.vild_toy_r18_fpn_toy import *

train_dataloader.dataset.pipeline[2].store_dir = {store!r}
''' + OVERRIDES
KEYS = ('coco/novel_ap50', 'coco/base_ap50', 'coco/novel_ap', 'coco/base_ap')


def _last_json(work):
    with open(sorted(glob.glob(osp.join(work, '*', '*.json')))[-1]) as f:
        return json.load(f)


def test_vild_text_precompute_vild_test(tmp_path, tiny_world, run_python,
                                        random_toy_teacher):
    fmt = dict(teacher=random_toy_teacher, root=tiny_world)
    text_cfg = tmp_path / 'vild_text.py'
    text_cfg.write_text(TEXT.format(**fmt))
    run_python(['tools/train.py', str(text_cfg), '--work-dir',
                str(tmp_path / 'text')])
    text_ckpt = str(tmp_path / 'text' / 'epoch_1.pth')
    state = safe_torch_load(text_ckpt, map_location='cpu')['state_dict']
    assert not any('image' in k for k in state)  # ViLD-text: no image branch
    assert not any(k.startswith('teacher.') for k in state)

    store = str(tmp_path / 'store')
    run_python([
        'tools/misc/precompute_vild_embeds.py', str(text_cfg), text_ckpt,
        '--dataset-config', str(text_cfg), '--clip-model', 'mmovl-toy-vit',
        '--clip-checkpoint', random_toy_teacher, '--out', store,
        '--num-proposals', '5', '--shard-size', '20'
    ])
    with open(osp.join(tiny_world, 'annotations',
                       'instances_train.json')) as f:
        train_ids = {img['id'] for img in json.load(f)['images']}
    reader = ProposalEmbedStore(store)
    for img_id in train_ids:
        boxes, embeds = reader.get(img_id)
        assert boxes.shape[0] == embeds.shape[0] <= 5
        assert embeds.shape[1] == 64  # the toy CLIP's embedding width

    full_cfg = tmp_path / 'vild.py'
    full_cfg.write_text(FULL.format(store=store, **fmt))
    run_python(['tools/train.py', str(full_cfg), '--work-dir',
                str(tmp_path / 'full')])
    # the image loss was computed from the store at every logged step
    with open(glob.glob(osp.join(tmp_path, 'full', '*', 'vis_data',
                                 'scalars.json'))[0]) as f:
        logged = [json.loads(line) for line in f]
    image_losses = [r['loss_image'] for r in logged if 'loss_image' in r]
    assert image_losses and all(math.isfinite(v) and v > 0
                                for v in image_losses)

    full_ckpt = str(tmp_path / 'full' / 'epoch_1.pth')
    for mode in ('text', 'ensemble'):
        work = str(tmp_path / f'test_{mode}')
        run_python([
            'tools/test.py', str(full_cfg), full_ckpt, '--work-dir', work,
            '--cfg-options', f'model.roi_head.bbox_head.score_mode={mode}'
        ])
        metrics = _last_json(work)
        # one epoch on 48 images learns little: the point is that the test
        # runs with the whole vocabulary and reports base and novel AP
        assert all(0 <= metrics[k] <= 1 for k in KEYS), (mode, metrics)
