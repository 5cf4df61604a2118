# Copyright (c) mmovl contributors. All rights reserved.
"""CPRFL end to end on a tiny long-tailed toy world: tools/train.py with the
shipped toy config, then tools/test.py, whose long-tail mAP must equal
sklearn's on the checkpoint's own scores, recomputed here in-process."""
import glob
import json
import os.path as osp

import numpy as np
import torch
from mmengine.config import Config
from mmengine.runner import Runner
from safetensors.torch import load_file
from sklearn.metrics import average_precision_score

import mmovl  # noqa: F401
from mmovl.utils import safe_torch_load, scoped_safe_checkpoint_loading


CONFIG = '''
from mmengine.config import read_base

with read_base():
    from mmovl.configs.cprfl.cprfl_toy_vit_p8_10e_toy_lt import *

toy_teacher = {teacher!r}
model.backbone.checkpoint = toy_teacher
model.teacher.checkpoint = toy_teacher
for _loader in (train_dataloader, val_dataloader, test_dataloader):
    _loader.update(batch_size=16, num_workers=0, persistent_workers=False)
    _loader.dataset.data_root = {root!r}
train_cfg.update(max_epochs=2, val_interval=2)
param_scheduler[1].update(end=2)
'''


def test_cprfl_train_then_test(tmp_path, tiny_world, run_python,
                               random_toy_teacher):
    teacher = random_toy_teacher
    cfg_path = tmp_path / 'cprfl_tiny.py'
    cfg_path.write_text(CONFIG.format(teacher=teacher, root=tiny_world))
    work = str(tmp_path / 'train')
    run_python(['tools/train.py', str(cfg_path), '--work-dir', work])
    ckpt = osp.join(work, 'epoch_2.pth')
    state = safe_torch_load(ckpt, map_location='cpu')['state_dict']

    # The frozen blocks are the teacher's; the head and the last block moved.
    init = load_file(teacher)
    torch.testing.assert_close(state['backbone.visual.transformer.resblocks'
                                     '.0.mlp.c_fc.weight'],
                               init['visual.transformer.resblocks.0.mlp.'
                                    'c_fc.weight'])
    assert not torch.allclose(
        state['backbone.visual.transformer.resblocks.3.mlp.c_fc.weight'],
        init['visual.transformer.resblocks.3.mlp.c_fc.weight'])
    assert not any(k.startswith('teacher.') for k in state)

    test_dir = str(tmp_path / 'test')
    run_python(['tools/test.py', str(cfg_path), ckpt, '--work-dir', test_dir])
    metrics = json.load(open(sorted(glob.glob(
        osp.join(test_dir, '*', '*.json')))[-1]))

    # The same checkpoint scored in-process, mAP by sklearn.
    cfg = Config.fromfile(str(cfg_path))
    cfg.work_dir = str(tmp_path / 'inproc')
    cfg.load_from = ckpt
    runner = Runner.from_cfg(cfg)
    with scoped_safe_checkpoint_loading():  # as tools/test.py loads it
        runner.load_checkpoint(ckpt)
    model = runner.model.eval()
    loader = runner.test_dataloader
    model.set_vocabulary(loader.dataset.metainfo['classes'])
    scores, labels = [], []
    with torch.no_grad():
        for batch in loader:
            for sample in model.test_step(batch):
                scores.append(sample.pred_score.numpy())
                row = np.zeros(len(sample.pred_score), dtype=np.int64)
                row[sample.gt_label.numpy()] = 1
                labels.append(row)
    scores, labels = np.stack(scores), np.stack(labels)
    assert scores.shape == (len(loader.dataset), 30)
    has_pos = labels.sum(0) > 0
    expected = 100 * np.mean([
        average_precision_score(labels[:, c], scores[:, c])
        for c in np.flatnonzero(has_pos)
    ])
    assert abs(metrics['multi-label/lt/mAP'] - expected) < 1e-3
    assert abs(metrics['multi-label/gzsl/mAP'] - expected) < 1e-3
