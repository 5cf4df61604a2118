# Copyright (c) mmovl contributors. All rights reserved.
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn as nn
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader, _load_checkpoint

from mmovl.utils import (check_state_dict_fits,
                         safe_checkpoint_loading_enabled, safe_torch_load,
                         scoped_safe_checkpoint_loading, state_dict_mismatches)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@pytest.fixture
def safe_loading():
    """mmengine's CheckpointLoader with mmovl's loader, as mmovl's tools
    switch it on; mmengine's own is back afterwards."""
    with scoped_safe_checkpoint_loading():
        yield


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


def test_loads_what_mmengine_writes(tmp_path, safe_loading):
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


def test_refuses_arbitrary_code(tmp_path, safe_loading):
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


def test_missing_file_named(tmp_path, safe_loading):
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


def test_scoped_switch_restores_the_previous_loader(tmp_path):
    def other_loader(filename, map_location=None):
        return {'other': True}

    before = CheckpointLoader._schemes['']
    # Whatever earlier tests left registered, start from another loader.
    CheckpointLoader.register_scheme('', other_loader, force=True)
    try:
        assert not safe_checkpoint_loading_enabled()
        with scoped_safe_checkpoint_loading():
            assert safe_checkpoint_loading_enabled()
            with scoped_safe_checkpoint_loading():  # nested: still on
                assert safe_checkpoint_loading_enabled()
            assert safe_checkpoint_loading_enabled()
        assert CheckpointLoader._schemes[''] is other_loader
        with pytest.raises(KeyError):
            with scoped_safe_checkpoint_loading():
                raise KeyError('boom')
        assert CheckpointLoader._schemes[''] is other_loader
    finally:
        CheckpointLoader.register_scheme('', before, force=True)


OPT_IN = """
import sys
import torch
from mmengine.runner.checkpoint import (CheckpointLoader, _load_checkpoint,
                                        load_from_local)
import mmovl
assert CheckpointLoader._schemes[''] is load_from_local
# mmengine alone: torch's weights_only=True refuses its own HistoryBuffer
try:
    _load_checkpoint(sys.argv[1])
except Exception as e:
    assert 'HistoryBuffer' in str(e), e
else:
    raise AssertionError('mmengine loaded a HistoryBuffer on its own')
import mmovl.utils.safe_checkpoint_loading
from mmovl.utils import safe_checkpoint_loading_enabled
assert safe_checkpoint_loading_enabled()
ckpt = _load_checkpoint(sys.argv[1])
assert abs(ckpt['message_hub']['log_scalars']['train/loss'].mean() -
           0.875 / 3) < 1e-12
try:
    _load_checkpoint(sys.argv[2])
except RuntimeError as e:
    assert 'Refused to load' in str(e), e
else:
    raise AssertionError('pickled code was loaded')
print('ok')
"""


def test_opt_in_module_switches_safe_loading_on(tmp_path):
    """``custom_imports=dict(imports=['mmovl.utils.safe_checkpoint_loading'])``
    (an import of the module) is what switches it on in another project;
    ``import mmovl`` alone does not."""
    good, evil = str(tmp_path / 'good.pth'), str(tmp_path / 'evil.pth')
    torch.save(_mmengine_like_checkpoint(), good)
    _Evil.marker = str(tmp_path / 'pwned')
    torch.save({'state_dict': {}, 'payload': _Evil()}, evil)
    proc = subprocess.run(
        [sys.executable, '-c', OPT_IN, good, evil], cwd=REPO,
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert proc.stdout.strip().endswith('ok')
    assert not osp.exists(_Evil.marker)


def test_custom_imports_opt_in_through_a_config(tmp_path):
    """The documented config route: mmengine imports the module while
    reading the config."""
    cfg = tmp_path / 'cfg.py'
    cfg.write_text("custom_imports = dict(imports=['mmovl', "
                   "'mmovl.utils.safe_checkpoint_loading'], "
                   "allow_failed_imports=False)\n")
    code = ('import sys\n'
            'from mmengine.config import Config\n'
            'from mmovl.utils import safe_checkpoint_loading_enabled\n'
            'assert not safe_checkpoint_loading_enabled()\n'
            'Config.fromfile(sys.argv[1])\n'
            'assert safe_checkpoint_loading_enabled()\n')
    proc = subprocess.run([sys.executable, '-c', code, str(cfg)], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_state_dict_fit_check():
    model = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1))
    state = model.state_dict()
    check_state_dict_fits(model, state, 'fits')  # no error
    assert state_dict_mismatches(model, state) == []
    bad = dict(state)
    del bad['1.bias']
    bad['2.weight'] = torch.zeros(1)
    bad['0.weight'] = torch.zeros(4, 2)
    bad.update({f'extra.{i}': torch.zeros(1) for i in range(7)})
    with pytest.raises(ValueError) as info:
        check_state_dict_fits(model, bad, 'x.pth does not fit the model',
                              hint='Wrong config?')
    assert str(info.value) == (
        'x.pth does not fit the model: missing keys: 1.bias; unexpected '
        'keys: 2.weight, extra.0, extra.1, extra.2, extra.3 and 3 more; '
        'shape mismatch: 0.weight (4, 2) (expected (3, 2)). Wrong config?')
    # shapes instead of a model, ignored prefixes, another exception type
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    assert state_dict_mismatches(
        shapes, dict(state, **{'aux.w': torch.ones(1)}),
        ignore=('aux.', )) == []

    class MyError(ValueError):
        pass

    with pytest.raises(MyError, match='missing keys: 1.bias'):
        check_state_dict_fits(shapes, bad, 'x', error=MyError)
