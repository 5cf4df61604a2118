# Copyright (c) mmovl contributors. All rights reserved.
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.runner.checkpoint import _load_checkpoint

import mmovl  # noqa: F401  (installs the safe loader)
from mmovl.utils import safe_torch_load


def _mmengine_like_checkpoint():
    buf = HistoryBuffer()
    for v in (0.5, 0.25, np.float64(0.125)):
        buf.update(v)
    return {
        'meta': {'epoch': 3, 'seed': 0, 'dataset_meta': {'classes': ('a', )}},
        'state_dict': {'w': torch.arange(4.)},
        'message_hub': {
            'log_scalars': {'train/loss': buf},
            'runtime_info': {'iter': 12, 'scores': np.arange(3)},
        },
        'optimizer': {'state': {}, 'param_groups': [{'lr': 0.1}]},
    }


def test_loads_what_mmengine_writes(tmp_path):
    path = str(tmp_path / 'ckpt.pth')
    torch.save(_mmengine_like_checkpoint(), path)
    # through mmengine's own entry point, as Runner.resume uses it
    ckpt = _load_checkpoint(path, map_location='cpu')
    buf = ckpt['message_hub']['log_scalars']['train/loss']
    assert isinstance(buf, HistoryBuffer)
    assert buf.mean() == pytest.approx((0.5 + 0.25 + 0.125) / 3)
    np.testing.assert_array_equal(
        ckpt['message_hub']['runtime_info']['scores'], np.arange(3))
    assert torch.equal(ckpt['state_dict']['w'], torch.arange(4.))
    assert ckpt['meta']['dataset_meta']['classes'] == ('a', )


class _Evil:
    marker = None

    def __reduce__(self):
        return (open, (self.marker, 'w'))


def test_refuses_arbitrary_code(tmp_path):
    marker = str(tmp_path / 'pwned')
    _Evil.marker = marker
    path = str(tmp_path / 'evil.pth')
    torch.save({'state_dict': {}, 'payload': _Evil()}, path)
    with pytest.raises(RuntimeError, match='evil.pth'):
        _load_checkpoint(path)
    assert not osp.exists(marker)


@pytest.mark.parametrize('damage', ['truncate', 'empty', 'garbage'])
def test_corrupt_file_named(tmp_path, damage):
    path = tmp_path / 'broken.pth'
    torch.save(_mmengine_like_checkpoint(), str(path))
    data = path.read_bytes()
    path.write_bytes({
        'truncate': data[:len(data) // 2],
        'empty': b'',
        'garbage': b'not a checkpoint at all' * 10
    }[damage])
    with pytest.raises(RuntimeError, match='broken.pth'):
        safe_torch_load(str(path))


def test_missing_file_named(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        _load_checkpoint(str(tmp_path / 'nope.pth'))


def test_real_history_buffer_round_trip(tmp_path):
    """A buffer whose statistics were used pickles bound methods."""
    buf = HistoryBuffer()
    buf.update(2.0)
    buf.update(4.0)
    buf.statistics('mean')
    path = str(tmp_path / 'hub.pth')
    torch.save({'message_hub': {'log_scalars': {'loss': buf}}}, path)
    loaded = safe_torch_load(path)['message_hub']['log_scalars']['loss']
    assert loaded.mean() == 3.0 and loaded.current() == 4.0


class _GetattrAttack:
    """Pickles as getattr(<a numpy array>, 'tofile'): not a HistoryBuffer."""

    def __reduce__(self):
        return (getattr, (np.zeros(1), 'tofile'))


def test_getattr_is_restricted_to_history_buffers(tmp_path):
    path = str(tmp_path / 'getattr.pth')
    torch.save({'x': _GetattrAttack()}, path)
    with pytest.raises(RuntimeError, match='getattr.pth'):
        safe_torch_load(path)
