# Copyright (c) mmovl contributors. All rights reserved.
"""Train an mmovl model (an mmpretrain or an mmdet config) with mmengine."""
import argparse
import os
import os.path as osp
from typing import Optional

from mmengine.config import Config, DictAction
from mmengine.logging import print_log
from mmengine.device import (is_cuda_available, is_mlu_available,
                             is_musa_available, is_npu_available)
from mmengine.optim import AmpOptimWrapper, OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS
from mmengine.runner import Runner

import mmovl  # noqa: F401  (registers mmovl's components)
from mmovl.engine import CPUAmpOptimWrapper
from mmovl.utils import (enable_safe_checkpoint_loading, setup_cpu_distributed,
                         teardown_distributed)


def parse_args():
    parser = argparse.ArgumentParser(description='Train a model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from the given checkpoint, or from the latest one in '
        'the work dir when no path is given')
    parser.add_argument(
        '--amp',
        action='store_true',
        help='enable automatic mixed precision: mmengine\'s AmpOptimWrapper '
        '(float16, dynamic loss scale) on a GPU / NPU / MLU / MUSA, '
        'CPUAmpOptimWrapper (bfloat16 autocast) on a machine without one')
    parser.add_argument(
        '--no-validate',
        action='store_true',
        help='skip validation during training')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='scale the lr by the actual batch size against the config\'s '
        '`auto_scale_lr.base_batch_size`')
    parser.add_argument(
        '--no-pin-memory', action='store_true', help='disable pin_memory')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, e.g. train_cfg.max_epochs=2 '
        '(key=value pairs; lists as key="[a,b]")')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    # torch.distributed.launch passes --local-rank; torchrun sets LOCAL_RANK.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def amp_device_available() -> bool:
    """Whether mmengine's ``AmpOptimWrapper`` can run here (it asserts one
    of these devices when it is built)."""
    return (is_cuda_available() or is_npu_available() or is_mlu_available()
            or is_musa_available())


def optim_wrapper_class(cfg: Config) -> type:
    """The class ``cfg.optim_wrapper`` builds.

    Pure-Python configs give the class itself, dict-style ones a registry
    name (looked up as the runner will, in the config's default scope and
    its parents; default ``'OptimWrapper'``, as mmengine's builder).
    """
    wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
    if isinstance(wrapper, type):
        return wrapper
    if not isinstance(wrapper, str):
        raise TypeError(f'optim_wrapper.type must be a class or a registry '
                        f'name, got {wrapper!r}')
    with OPTIM_WRAPPERS.switch_scope_and_registry(
            cfg.get('default_scope', None)) as registry:
        cls = registry.get(wrapper)
    if cls is None:
        raise ValueError(
            f'optim_wrapper.type={wrapper!r} is not a registered optimizer '
            'wrapper')
    return cls


def enable_amp(cfg: Config, amp_device: Optional[bool] = None) -> None:
    """Switch ``cfg.optim_wrapper`` to automatic mixed precision (--amp).

    A plain ``OptimWrapper`` becomes mmengine's ``AmpOptimWrapper``
    (float16 autocast, dynamic loss scale unless the config sets one) where
    a GPU / NPU / MLU / MUSA device is available, as mmpretrain's and
    mmdet's train.py do; on a machine without one (where that wrapper
    refuses to be built) it becomes mmovl's ``CPUAmpOptimWrapper``
    (bfloat16 CPU autocast, no loss scale), and so does an
    ``AmpOptimWrapper`` that the config names. A wrapper that already
    autocasts (a subclass of either) is kept. The config may give the type
    as a class (pure-Python configs) or a registry name.

    Args:
        cfg (Config): The config, changed in place.
        amp_device (bool, optional): Whether an AMP device is available.
            Defaults to None (:func:`amp_device_available`).

    Raises:
        ValueError: For any other optimizer wrapper, which --amp cannot
            make mixed precision.
    """
    if amp_device is None:
        amp_device = amp_device_available()
    cls = optim_wrapper_class(cfg)
    if amp_device:
        if issubclass(cls, (AmpOptimWrapper, CPUAmpOptimWrapper)):
            return
        if cls is OptimWrapper:
            _set_wrapper_type(cfg, AmpOptimWrapper)
            cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
            return
    else:
        if issubclass(cls, CPUAmpOptimWrapper):
            return
        if cls in (OptimWrapper, AmpOptimWrapper):
            _set_wrapper_type(cfg, CPUAmpOptimWrapper)
            # the GradScaler's arguments: bfloat16 needs no loss scale
            for key in ('loss_scale', 'use_fsdp'):
                cfg.optim_wrapper.pop(key, None)
            return
        if issubclass(cls, AmpOptimWrapper):
            raise ValueError(
                f'--amp: the config\'s {cls.__name__} is an AmpOptimWrapper, '
                'which needs a GPU, NPU, MLU or MUSA device; this machine '
                'has none')
    raise ValueError(
        f'--amp needs OptimWrapper or AmpOptimWrapper (or a subclass of '
        f'AmpOptimWrapper / CPUAmpOptimWrapper), the config uses '
        f'{cls.__module__}.{cls.__name__}')


def _set_wrapper_type(cfg: Config, cls: type) -> None:
    """Set ``optim_wrapper.type`` to ``cls`` by its registry name (mmengine's
    root registry, which every scope falls back to): a class set into a
    loaded config could not be dumped to the work dir."""
    cfg.optim_wrapper.type = cls.__name__


def merge_args(cfg: Config, args) -> Config:
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])

    if args.amp:
        enable_amp(cfg)

    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume

    if args.no_validate:
        cfg.val_cfg = None
        cfg.val_dataloader = None
        cfg.val_evaluator = None

    if args.auto_scale_lr:
        if 'auto_scale_lr' not in cfg or 'base_batch_size' not in (
                cfg.auto_scale_lr or {}):
            raise ValueError('--auto-scale-lr needs `auto_scale_lr = '
                             'dict(base_batch_size=...)` in the config')
        cfg.auto_scale_lr.enable = True

    if args.no_pin_memory:
        for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
            if cfg.get(key):
                cfg[key]['pin_memory'] = False

    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if not args.amp:
        amp_on_this_machine(cfg)
    return cfg


def amp_on_this_machine(cfg: Config,
                        amp_device: Optional[bool] = None) -> bool:
    """A config that trains in mixed precision with mmengine's
    ``AmpOptimWrapper`` (e.g. MKT's stage 2, as its authors) runs with
    ``CPUAmpOptimWrapper`` (bfloat16) on a machine without a GPU, NPU, MLU or
    MUSA device, where ``AmpOptimWrapper`` refuses to be built. Returns
    whether it changed the config."""
    if amp_device is None:
        amp_device = amp_device_available()
    if amp_device or optim_wrapper_class(cfg) is not AmpOptimWrapper:
        return False
    enable_amp(cfg, amp_device=False)
    print_log(
        'The config trains with AmpOptimWrapper, which needs a GPU / NPU / '
        'MLU / MUSA device; this machine has none: mixed precision in '
        'bfloat16 on the CPU (CPUAmpOptimWrapper) instead.',
        logger='current')
    return True


def main():
    # resume / load_from: weights_only=True plus mmengine's own types.
    enable_safe_checkpoint_loading()
    args = parse_args()
    cfg = merge_args(Config.fromfile(args.config), args)
    setup_cpu_distributed(cfg, args.launcher)
    runner = Runner.from_cfg(cfg)
    runner.train()
    teardown_distributed()


if __name__ == '__main__':
    main()
