# Copyright (c) mmovl contributors. All rights reserved.
"""End-to-end runs of tools/ on a tiny toy world: resume and distributed."""
import glob
import json
import os
import os.path as osp
import socket
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config

from mmovl.utils import safe_torch_load

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

# A config written outside the repository, inheriting mmovl's baseline the
# way another OpenMMLab project would, changing only what a tiny CPU run
# needs. No random augmentation: mmengine does not checkpoint numpy's global
# RNG, so a flip would differ after a resume.
TINY_CONFIG = '''
from mmengine.config import read_base

with read_base():
    from mmovl.configs.baseline.vit_tiny_p8_linear_10e_toy import *

for _loader in (train_dataloader, val_dataloader, test_dataloader):
    _loader.update(batch_size=8, num_workers=0, persistent_workers=False)
    _loader.dataset.data_root = {root!r}
train_dataloader.dataset.pipeline = test_pipeline
train_cfg.update(max_epochs={epochs}, val_interval={epochs})
param_scheduler[1].update(end={epochs})
default_hooks.logger.interval = 1
randomness = dict(seed=0, deterministic=True)
'''


def _write_config(tmp_path, root, epochs, name='tiny.py', flip=False):
    path = tmp_path / name
    text = TINY_CONFIG.format(root=root, epochs=epochs)
    if flip:  # the real configs' random augmentation
        text = text.replace('train_dataloader.dataset.pipeline = '
                            'test_pipeline\n', '')
    path.write_text(text)
    return str(path)


def _env():
    env = dict(os.environ)
    env['PYTHONPATH'] = REPO + os.pathsep + env.get('PYTHONPATH', '')
    env['PYTHON'] = sys.executable
    env['OMP_NUM_THREADS'] = '1'
    env['CUDA_VISIBLE_DEVICES'] = ''
    return env


def _run(args, env=None):
    proc = subprocess.run(
        args, cwd=REPO, env=env or _env(), capture_output=True, text=True,
        timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return str(s.getsockname()[1])


def _test_metrics(work_dir):
    logs = sorted(glob.glob(osp.join(work_dir, '*', '*.json')))
    assert logs, f'no test log in {work_dir}'
    with open(logs[-1]) as f:
        return json.load(f)


def _weights(path):
    return safe_torch_load(path, map_location='cpu')['state_dict']


def test_resume_gives_the_same_weights(tmp_path, tiny_world):
    """2 epochs straight == epoch 1's checkpoint resumed for 1 more."""
    cfg = _write_config(tmp_path, tiny_world, epochs=2)
    straight, resumed = str(tmp_path / 'straight'), str(tmp_path / 'resumed')
    _run([sys.executable, 'tools/train.py', cfg, '--work-dir', straight])
    epoch1 = osp.join(straight, 'epoch_1.pth')
    _run([
        sys.executable, 'tools/train.py', cfg, '--work-dir', resumed,
        '--resume', epoch1
    ])
    assert not osp.exists(osp.join(resumed, 'epoch_1.pth'))  # resumed
    a = _weights(osp.join(straight, 'epoch_2.pth'))
    b = _weights(osp.join(resumed, 'epoch_2.pth'))
    first = _weights(epoch1)
    assert a.keys() == b.keys()
    changed = False
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6)
        changed |= not torch.equal(a[key], first[key])
    assert changed, 'the second epoch did not train'
    ckpt = safe_torch_load(osp.join(resumed, 'epoch_2.pth'))
    assert ckpt['meta']['epoch'] == 2
    # optimizer state went through the round trip too
    assert ckpt['optimizer']['state']


def test_resume_with_random_flips_gives_the_same_weights(
        tmp_path, tiny_world):
    """With the real configs' random flips too, epoch 1's checkpoint resumed
    for 1 more epoch ends with the uninterrupted run's weights:
    RNGStateHook restores the generators (without it epoch 2 flips other
    images)."""
    cfg = _write_config(tmp_path, tiny_world, epochs=2, flip=True)
    pipeline = Config.fromfile(cfg).train_dataloader.dataset.pipeline
    assert any('Flip' in str(step['type']) for step in pipeline)
    straight, resumed = str(tmp_path / 'straight'), str(tmp_path / 'resumed')
    _run([sys.executable, 'tools/train.py', cfg, '--work-dir', straight])
    _run([
        sys.executable, 'tools/train.py', cfg, '--work-dir', resumed,
        '--resume', osp.join(straight, 'epoch_1.pth')
    ])
    a = _weights(osp.join(straight, 'epoch_2.pth'))
    b = _weights(osp.join(resumed, 'epoch_2.pth'))
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6,
                                   msg=key)


@pytest.mark.skipif(not torch.distributed.is_gloo_available(),
                    reason='needs the gloo backend')
def test_dist_runs_match_single_process(tmp_path, tiny_world):
    cfg = _write_config(tmp_path, tiny_world, epochs=2)
    work = str(tmp_path / 'dist_train')
    proc = _run(['bash', 'tools/dist_train.sh', cfg, '2', '--work-dir', work],
                env={**_env(), 'PORT': _free_port()})
    assert 'Distributed training: True' in proc.stdout + proc.stderr
    ckpt = osp.join(work, 'epoch_2.pth')
    assert osp.isfile(ckpt)

    single = str(tmp_path / 'test1')
    _run([sys.executable, 'tools/test.py', cfg, ckpt, '--work-dir', single])
    double = str(tmp_path / 'test2')
    proc = _run(
        ['bash', 'tools/dist_test.sh', cfg, ckpt, '2', '--work-dir', double],
        env={**_env(), 'PORT': _free_port()})
    assert 'Distributed training: True' in proc.stdout + proc.stderr
    m1, m2 = _test_metrics(single), _test_metrics(double)
    keys = [k for k in m1 if k.startswith('multi-label')]
    assert keys, m1
    for key in keys:
        assert m1[key] == pytest.approx(m2[key], abs=1e-6), key
