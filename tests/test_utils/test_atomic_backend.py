# Copyright (c) mmovl contributors. All rights reserved.
"""Checkpoints are written atomically: the default runtimes' CheckpointHook
writes through AtomicLocalBackend, and a write that dies half-way leaves the
previous file whole (mmengine's local backend leaves a truncated one)."""
import os
import os.path as osp
import subprocess
import sys
import textwrap

import pytest
import torch
from mmengine.config import Config
from mmengine.fileio import LocalBackend, get_file_backend
from mmengine.runner.checkpoint import save_checkpoint

from mmovl.utils.atomic_backend import ATOMIC_LOCAL_BACKEND, AtomicLocalBackend
from mmovl.utils.fileio import TMP_PREFIX

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@pytest.mark.parametrize('runtime', ['default_runtime_cls.py',
                                     'default_runtime_det.py'])
def test_default_runtimes_write_checkpoints_atomically(runtime, tmp_path):
    cfg = Config.fromfile(osp.join(REPO, 'mmovl/configs/_base_', runtime))
    args = cfg.default_hooks.checkpoint.backend_args
    backend = get_file_backend(str(tmp_path / 'x.pth'), backend_args=args)
    assert isinstance(backend, AtomicLocalBackend)
    path = str(tmp_path / 'epoch_1.pth')
    save_checkpoint({'w': torch.arange(4)}, path, backend_args=args)
    assert torch.equal(
        torch.load(path, weights_only=True)['w'], torch.arange(4))
    backend.put_text('epoch_1.pth', str(tmp_path / 'last_checkpoint'))
    assert (tmp_path / 'last_checkpoint').read_text() == 'epoch_1.pth'
    assert not [n for n in os.listdir(tmp_path) if n.startswith(TMP_PREFIX)]


def _die_half_way(backend_name, path):
    """A process that writes a large checkpoint through the backend and is
    killed (os._exit, no clean-up) after half of the bytes."""
    code = textwrap.dedent(f'''
        import os, torch
        import mmovl.utils.atomic_backend  # registers the backend
        from mmengine.runner.checkpoint import save_checkpoint
        real_write = None
        import io
        class Dying(io.FileIO):
            def write(self, b):
                n = super().write(b[:len(b) // 2])
                self.flush()
                os._exit(9)
        import builtins
        real_open = builtins.open
        def dying_open(file, mode='r', *a, **k):
            if 'w' in mode and 'b' in mode:
                return Dying(file, 'w')
            return real_open(file, mode, *a, **k)
        builtins.open = dying_open
        save_checkpoint({{'w': torch.ones(100000)}}, {path!r},
                        backend_args=dict(backend={backend_name!r}))
    ''')
    proc = subprocess.run([sys.executable, '-c', code], cwd=REPO)
    assert proc.returncode == 9


def test_a_killed_write_leaves_the_previous_checkpoint(tmp_path):
    # mmengine's local backend: the file is left truncated.
    plain = str(tmp_path / 'plain.pth')
    torch.save({'w': torch.zeros(3)}, plain)
    _die_half_way('local', plain)
    with pytest.raises(Exception):
        torch.load(plain, weights_only=True)
    # mmovl's: the previous checkpoint is whole; only a temporary file stays.
    atomic = str(tmp_path / 'atomic.pth')
    torch.save({'w': torch.zeros(3)}, atomic)
    _die_half_way(ATOMIC_LOCAL_BACKEND, atomic)
    assert torch.equal(
        torch.load(atomic, weights_only=True)['w'], torch.zeros(3))
    left = [n for n in os.listdir(tmp_path) if n.startswith(TMP_PREFIX)]
    assert len(left) == 1 and left[0].endswith('atomic.pth')


def test_it_is_mmengines_local_backend_otherwise():
    assert issubclass(AtomicLocalBackend, LocalBackend)
    assert type(get_file_backend('x.pth')) is LocalBackend  # untouched
