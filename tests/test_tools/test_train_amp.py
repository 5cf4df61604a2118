# Copyright (c) mmovl contributors. All rights reserved.
"""``tools/train.py --amp``: the optimizer wrapper it picks for class and
registry-name configs, mmovl's CPU wrapper (bfloat16 autocast, no loss
scale), and toy MKT / CPRFL runs with --amp on a CPU, resumed."""
import glob
import importlib.util
import json
import math
import os
import os.path as osp
import subprocess
import sys
from argparse import Namespace

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.optim import AmpOptimWrapper, OptimWrapper, build_optim_wrapper
from mmengine.registry import OPTIM_WRAPPERS, DefaultScope

from mmovl.engine import CPUAmpOptimWrapper
from mmovl.utils import safe_torch_load

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG_ROOT = osp.join(REPO, 'mmovl', 'configs')


@pytest.fixture(scope='module')
def train_tool():
    """tools/train.py as a module."""
    spec = importlib.util.spec_from_file_location(
        'mmovl_tools_train', osp.join(REPO, 'tools', 'train.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@OPTIM_WRAPPERS.register_module(force=True)
class _TestAmpSubclass(AmpOptimWrapper):
    """A user's AMP wrapper (already mixed precision)."""


@OPTIM_WRAPPERS.register_module(force=True)
class _TestPlainSubclass(OptimWrapper):
    """A user's wrapper that --amp cannot make mixed precision."""


def _args(**kwargs):
    args = dict(
        config='my_config.py', work_dir='work', resume=None, amp=True,
        no_validate=False, auto_scale_lr=False, no_pin_memory=False,
        launcher='none', cfg_options=None)
    args.update(kwargs)
    return Namespace(**args)


CLASS_CONFIG = '''
from torch.optim import SGD

from {module} import {name}

default_scope = 'mmpretrain'
optim_wrapper = dict(type={name}, optimizer=dict(type=SGD, lr=0.1){extra})
'''

NAME_CONFIG = '''
default_scope = 'mmpretrain'
optim_wrapper = dict(type={name!r}, optimizer=dict(type='SGD', lr=0.1){extra})
'''

MODULES = {
    OptimWrapper: 'mmengine.optim',
    AmpOptimWrapper: 'mmengine.optim',
    CPUAmpOptimWrapper: 'mmovl.engine'
}


def _config(tmp_path, wrapper, as_class, **extra):
    """A config file whose optim_wrapper.type is ``wrapper`` as a class
    imported in a pure-Python config (as mmovl's configs do) or by its
    registry name."""
    extra = ''.join(f', {k}={v!r}' for k, v in extra.items())
    if as_class:
        text = CLASS_CONFIG.format(
            module=MODULES[wrapper], name=wrapper.__name__, extra=extra)
    else:
        text = NAME_CONFIG.format(name=wrapper, extra=extra)
    path = tmp_path / f'cfg_{len(list(tmp_path.iterdir()))}.py'
    path.write_text(text)
    return Config.fromfile(str(path))


def _resolved(cfg):
    """The class the runner will build for ``cfg.optim_wrapper``."""
    wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
    if isinstance(wrapper, type):
        return wrapper
    with OPTIM_WRAPPERS.switch_scope_and_registry(
            cfg.get('default_scope')) as registry:
        return registry.get(wrapper)


# (config's wrapper, AMP device?) -> expected wrapper class
CASES = [
    (OptimWrapper, True, AmpOptimWrapper),
    (AmpOptimWrapper, True, AmpOptimWrapper),
    (CPUAmpOptimWrapper, True, CPUAmpOptimWrapper),
    (OptimWrapper, False, CPUAmpOptimWrapper),
    (AmpOptimWrapper, False, CPUAmpOptimWrapper),
    (CPUAmpOptimWrapper, False, CPUAmpOptimWrapper),
]


@pytest.mark.parametrize('as_class', [True, False], ids=['class', 'name'])
@pytest.mark.parametrize(
    'wrapper,amp_device,expected', CASES,
    ids=[f'{w.__name__}-{"gpu" if d else "cpu"}' for w, d, _ in CASES])
def test_merge_args_amp_picks_the_wrapper(tmp_path, train_tool, monkeypatch,
                                          wrapper, amp_device, expected,
                                          as_class):
    monkeypatch.setattr(train_tool, 'amp_device_available',
                        lambda: amp_device, raising=False)
    cfg = _config(tmp_path, wrapper if as_class else wrapper.__name__,
                  as_class)
    assert _resolved(cfg) is wrapper  # the config as written
    cfg = train_tool.merge_args(cfg, _args())
    assert _resolved(cfg) is expected
    scale = cfg.optim_wrapper.get('loss_scale')
    if expected is AmpOptimWrapper and wrapper is OptimWrapper:
        assert scale == 'dynamic'  # as mmpretrain's / mmdet's train.py
    if expected is CPUAmpOptimWrapper:
        assert scale is None  # bfloat16: no GradScaler
    # the runner can dump the config to the work dir
    assert 'optim_wrapper' in cfg.pretty_text


def test_merge_args_amp_on_a_shipped_config(train_tool, monkeypatch):
    """The failure reported: every mmovl config names its wrapper by class
    (``--amp needs OptimWrapper or AmpOptimWrapper, the config uses <class
    ...OptimWrapper>``)."""
    path = osp.join(CONFIG_ROOT, 'mkt', 'mkt_toy_vit_p8_10e_toy.py')
    for amp_device, expected in ((True, AmpOptimWrapper),
                                 (False, CPUAmpOptimWrapper)):
        monkeypatch.setattr(train_tool, 'amp_device_available',
                            lambda: amp_device, raising=False)
        cfg = train_tool.merge_args(Config.fromfile(path), _args())
        assert _resolved(cfg) is expected
        # everything else about the optimizer is the config's
        assert cfg.optim_wrapper.optimizer.lr == 5e-4
        assert cfg.optim_wrapper.clip_grad == dict(max_norm=5.0)
        assert 'optim_wrapper' in cfg.pretty_text
    # without --amp nothing changes
    cfg = train_tool.merge_args(Config.fromfile(path), _args(amp=False))
    assert _resolved(cfg) is OptimWrapper


def test_merge_args_amp_keeps_settings_and_refuses_others(
        tmp_path, train_tool, monkeypatch):
    monkeypatch.setattr(train_tool, 'amp_device_available', lambda: True)
    cfg = _config(tmp_path, 'OptimWrapper', False, loss_scale=512.0)
    cfg = train_tool.merge_args(cfg, _args())
    assert cfg.optim_wrapper.loss_scale == 512.0  # the config's, kept
    # no type: mmengine's default, OptimWrapper
    cfg = Config(dict(optim_wrapper=dict(optimizer=dict(type='SGD', lr=1))))
    assert _resolved(train_tool.merge_args(cfg, _args())) is AmpOptimWrapper
    # a subclass of AmpOptimWrapper is mixed precision already
    for wrapper in (_TestAmpSubclass, '_TestAmpSubclass'):
        cfg = Config(dict(optim_wrapper=dict(type=wrapper)))
        cfg = train_tool.merge_args(cfg, _args())
        assert _resolved(cfg) is _TestAmpSubclass
    for amp_device in (True, False):
        monkeypatch.setattr(train_tool, 'amp_device_available',
                            lambda: amp_device)
        for wrapper in (_TestPlainSubclass, '_TestPlainSubclass'):
            cfg = Config(dict(optim_wrapper=dict(type=wrapper)))
            with pytest.raises(ValueError, match='_TestPlainSubclass'):
                train_tool.merge_args(cfg, _args())
        with pytest.raises(ValueError, match='not a registered'):
            train_tool.merge_args(
                Config(dict(optim_wrapper=dict(type='NoSuchWrapper'))),
                _args())
    # without an AMP device, an AmpOptimWrapper subclass cannot be built:
    # said before the runner starts
    cfg = Config(dict(optim_wrapper=dict(type=_TestAmpSubclass)))
    with pytest.raises(ValueError, match='needs a GPU'):
        train_tool.merge_args(cfg, _args())
    # the CPU wrapper drops the GradScaler's settings
    cfg = _config(tmp_path, 'AmpOptimWrapper', False, loss_scale=512.0,
                  dtype='bfloat16')
    cfg = train_tool.merge_args(cfg, _args())
    assert 'loss_scale' not in cfg.optim_wrapper
    assert cfg.optim_wrapper.dtype == 'bfloat16'


# -- CPUAmpOptimWrapper -----------------------------------------------------
def test_cpu_amp_wrapper_autocasts_and_steps_in_float32():
    torch.manual_seed(0)
    model = nn.Linear(8, 3)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        wrapper = build_optim_wrapper(
            model,
            dict(type='CPUAmpOptimWrapper',
                 optimizer=dict(type='SGD', lr=0.5)))
    assert type(wrapper) is CPUAmpOptimWrapper
    x = torch.randn(4, 8)
    weight = model.weight.detach().clone()
    with wrapper.optim_context(model):
        out = model(x)
        loss = out.float().square().mean()
    # the linear layer ran in bfloat16: autocast's cast, done by hand
    assert out.dtype == torch.bfloat16
    expected = F.linear(x.bfloat16(), model.weight.bfloat16(),
                        model.bias.bfloat16())
    assert torch.equal(out, expected)
    wrapper.backward(loss)
    # the parameters, their gradients and the step stay float32; SGD's
    # step with no loss scale: w - lr * grad
    grad = model.weight.grad.clone()
    assert model.weight.dtype == grad.dtype == torch.float32
    wrapper.step()
    torch.testing.assert_close(model.weight.detach(), weight - 0.5 * grad)
    state = wrapper.state_dict()
    assert 'loss_scaler' not in state
    wrapper.load_state_dict(state)
    # outside the context: float32
    assert model(x).dtype == torch.float32


def test_cpu_amp_wrapper_dtype():
    params = [nn.Parameter(torch.zeros(2))]
    opt = torch.optim.SGD(params, lr=1)
    assert CPUAmpOptimWrapper(optimizer=opt).cast_dtype is torch.bfloat16
    assert CPUAmpOptimWrapper(optimizer=opt, dtype=None).cast_dtype is \
        torch.bfloat16
    assert CPUAmpOptimWrapper(
        optimizer=opt, dtype=torch.bfloat16).cast_dtype is torch.bfloat16
    for dtype in ('float16', torch.float16, 'int8'):
        with pytest.raises(ValueError, match='bfloat16'):
            CPUAmpOptimWrapper(optimizer=opt, dtype=dtype)


def test_gpu_amp_checkpoint_state_loads_weights_only(tmp_path):
    """What AmpOptimWrapper adds to a checkpoint on a GPU, its GradScaler's
    state (emulated by torch's CPU GradScaler after a step), loads with
    mmovl's ``weights_only`` loader as it is."""
    param = nn.Parameter(torch.ones(3))
    opt = torch.optim.SGD([param], lr=0.1)
    scaler = torch.amp.GradScaler('cpu', init_scale=2.**10)
    scaler.scale((param * 2).sum()).backward()
    scaler.step(opt)
    scaler.update()
    state = dict(opt.state_dict(), loss_scaler=scaler.state_dict())
    path = str(tmp_path / 'amp.pth')
    torch.save(dict(optimizer=state), path)
    loaded = safe_torch_load(path)['optimizer']['loss_scaler']
    assert loaded == scaler.state_dict()
    assert loaded['scale'] == 2.**10


# -- end to end ---------------------------------------------------------------
MKT_CONFIG = '''
from mmengine.config import read_base

with read_base():
    from mmovl.configs.mkt.mkt_toy_vit_p8_10e_toy import *

toy_teacher = {teacher!r}
model.backbone.checkpoint = toy_teacher
model.teacher.checkpoint = toy_teacher
for _loader in (train_dataloader, val_dataloader, test_dataloader):
    _loader.update(batch_size=24, num_workers=0, persistent_workers=False)
    _loader.dataset.data_root = {root!r}
train_cfg.update(max_epochs=2, val_interval=2)
param_scheduler = param_scheduler[:1]
default_hooks.logger.interval = 1
randomness = dict(seed=0, deterministic=True)
'''

CPRFL_CONFIG = '''
from mmengine.config import read_base

with read_base():
    from mmovl.configs.cprfl.cprfl_toy_vit_p8_10e_toy_lt import *

toy_teacher = {teacher!r}
model.backbone.checkpoint = toy_teacher
model.teacher.checkpoint = toy_teacher
for _loader in (train_dataloader, val_dataloader, test_dataloader):
    _loader.update(batch_size=64, num_workers=0, persistent_workers=False)
    _loader.dataset.data_root = {root!r}
train_cfg.update(max_epochs=1, val_interval=1)
param_scheduler = param_scheduler[:1]
default_hooks.logger.interval = 1
'''


def _train(args):
    """Run tools/train.py on the CPU only (as on a machine without a GPU)."""
    env = dict(os.environ, PYTHONPATH=REPO, CUDA_VISIBLE_DEVICES='',
               OMP_NUM_THREADS='1')
    proc = subprocess.run([sys.executable, 'tools/train.py'] + args,
                          cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc


def _train_log(work_dir):
    """The logged training iterations and the dumped config's text."""
    runs = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data')))
    assert runs, work_dir
    with open(osp.join(runs[-1], 'scalars.json')) as f:
        records = [json.loads(line) for line in f if line.strip()]
    with open(osp.join(runs[-1], 'config.py')) as f:
        config = f.read()
    return [r for r in records if 'loss' in r], config


def _check_amp_run(work_dir, iterations, keys):
    records, config = _train_log(work_dir)
    assert "type='CPUAmpOptimWrapper'" in config
    assert len(records) == iterations
    for record in records:
        for key in keys:
            assert math.isfinite(record[key]), record


def test_mkt_toy_trains_with_amp_on_cpu_and_resumes(tmp_path, tiny_world,
                                                    random_toy_teacher):
    cfg = tmp_path / 'mkt_amp.py'
    cfg.write_text(MKT_CONFIG.format(teacher=random_toy_teacher,
                                     root=tiny_world))
    straight, resumed = str(tmp_path / 'straight'), str(tmp_path / 'resumed')
    _train([str(cfg), '--work-dir', straight, '--amp', '--no-validate'])
    # 48 images in batches of 24: 2 iterations an epoch
    _check_amp_run(straight, 4, ('loss', 'loss_cls', 'loss_distill'))
    epoch1 = osp.join(straight, 'epoch_1.pth')
    ckpt = safe_torch_load(epoch1)
    assert ckpt['optimizer']['state']  # AdamW's moments
    assert 'loss_scaler' not in ckpt['optimizer']

    _train([str(cfg), '--work-dir', resumed, '--amp', '--no-validate',
            '--resume', epoch1])
    _check_amp_run(resumed, 2, ('loss', 'loss_cls', 'loss_distill'))
    assert not osp.exists(osp.join(resumed, 'epoch_1.pth'))
    a = safe_torch_load(osp.join(straight, 'epoch_2.pth'))['state_dict']
    b = safe_torch_load(osp.join(resumed, 'epoch_2.pth'))['state_dict']
    first = ckpt['state_dict']
    assert a.keys() == b.keys()
    assert any(not torch.equal(a[k], first[k]) for k in a), 'no training'
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6)


def test_cprfl_toy_trains_with_amp_on_cpu(tmp_path, tiny_world,
                                          random_toy_teacher):
    cfg = tmp_path / 'cprfl_amp.py'
    cfg.write_text(CPRFL_CONFIG.format(teacher=random_toy_teacher,
                                       root=tiny_world))
    work = str(tmp_path / 'work')
    _train([str(cfg), '--work-dir', work, '--amp', '--no-validate'])
    _check_amp_run(work, 1, ('loss', 'loss_cls'))
    assert osp.isfile(osp.join(work, 'epoch_1.pth'))


def test_a_config_that_asks_for_amp_runs_on_a_cpu(train_tool, monkeypatch):
    """MKT's stage 2 trains in mixed precision as its authors; without a
    GPU (and without --amp) it gets the CPU wrapper, with a GPU it keeps
    mmengine's."""
    path = osp.join(CONFIG_ROOT, 'mkt', 'mkt_vit_b16_prompt_nuswide.py')
    assert _resolved(Config.fromfile(path)) is AmpOptimWrapper
    for amp_device, expected in ((True, AmpOptimWrapper),
                                 (False, CPUAmpOptimWrapper)):
        monkeypatch.setattr(train_tool, 'amp_device_available',
                            lambda: amp_device, raising=False)
        cfg = train_tool.merge_args(Config.fromfile(path), _args(amp=False))
        assert _resolved(cfg) is expected
        assert cfg.optim_wrapper.optimizer.lr == 1e-3
    # a plain config stays plain without --amp, whatever the machine
    plain = osp.join(CONFIG_ROOT, 'mkt', 'mkt_vit_b16_20e_nuswide.py')
    cfg = train_tool.merge_args(Config.fromfile(plain), _args(amp=False))
    assert _resolved(cfg) is OptimWrapper
