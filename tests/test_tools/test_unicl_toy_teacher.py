# Copyright (c) mmovl contributors. All rights reserved.
"""The toy-teacher pipeline end to end on a tiny world: UniCL pretraining
with tools/train.py, export to open_clip's format, loading by CLIPTeacher,
and the zero-shot evaluation tool."""
import json
import os.path as osp
import subprocess
import sys

import torch
from mmengine.config import Config
from mmpretrain.registry import MODELS

from mmovl.models import CLIPTeacher
from mmovl.utils import safe_torch_load

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

TINY_UNICL = '''
from mmengine.config import read_base

with read_base():
    from mmovl.configs.unicl.unicl_toy_vit_p8_10e_toy import *

for _loader in (train_dataloader, val_dataloader, test_dataloader):
    _loader.update(batch_size=16, num_workers=0, persistent_workers=False)
    _loader.dataset.data_root = {root!r}
train_cfg.update(max_epochs=2, val_interval=2)
param_scheduler[1].update(end=2)
default_hooks.checkpoint.interval = 1
'''


def _run(args):
    proc = subprocess.run(
        args, cwd=REPO, capture_output=True, text=True, timeout=600,
        env={**__import__('os').environ, 'PYTHONPATH': REPO})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc


def test_pretrain_export_load_evaluate(tmp_path, tiny_world):
    cfg_path = tmp_path / 'unicl_tiny.py'
    cfg_path.write_text(TINY_UNICL.format(root=tiny_world))
    work = str(tmp_path / 'work')
    proc = _run([sys.executable, 'tools/train.py', str(cfg_path),
                 '--work-dir', work])
    assert 'multi-label/zsl/mAP' in proc.stdout + proc.stderr

    ckpt = osp.join(work, 'epoch_2.pth')
    out = str(tmp_path / 'toy_clip.safetensors')
    _run([sys.executable, 'tools/model_converters/unicl_to_open_clip.py',
          ckpt, out])

    # The exported teacher computes exactly what the trained model computes.
    cfg = Config.fromfile(str(cfg_path))
    model = MODELS.build(cfg.model)
    model.load_state_dict(safe_torch_load(ckpt)['state_dict'])
    model.eval()
    teacher = CLIPTeacher('mmovl-toy-vit', checkpoint=out)
    images = torch.randn(3, 3, 64, 64)
    names = ['red circle', 'blue square']
    with torch.no_grad():
        torch.testing.assert_close(
            teacher.encode_image(images), model.encode_image(images))
        model.set_vocabulary(names)
        expected = torch.stack(
            [s.pred_score for s in model.predict(images)])
    torch.testing.assert_close(
        teacher.encode_image(images) @ teacher.encode_labels(names).t(),
        expected, rtol=1e-5, atol=1e-5)

    report = str(tmp_path / 'zero_shot.json')
    _run([sys.executable, 'tools/analysis_tools/eval_zero_shot.py',
          '--checkpoint', out, '--data-root', tiny_world, '--out', report])
    with open(report) as f:
        figures = json.load(f)
    for who in ('teacher', 'random'):
        for key in ('zsl/mAP', 'gzsl/mAP', 'seen/mAP', 'gzsl/F1@3'):
            assert 0 <= figures[who][key] <= 100, (who, key)
