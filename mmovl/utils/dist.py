# Copyright (c) mmovl contributors. All rights reserved.
"""Let the frameworks' distributed launchers run on machines without GPUs."""
import logging
import os

import torch
import torch.distributed as torch_dist
from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.model import MMDistributedDataParallel, revert_sync_batchnorm
from mmengine.registry import MODEL_WRAPPERS


@MODEL_WRAPPERS.register_module()
class CPUDistributedDataParallel(MMDistributedDataParallel):
    """``MMDistributedDataParallel`` for processes without GPUs (gloo).

    PyTorch's DDP refuses ``SyncBatchNorm`` on CPU modules ("SyncBatchNorm
    layers only work with GPU modules"), and ViLD's heads use SyncBN as the
    authors' code does. Here its layers become ``BatchNorm`` (mmengine's
    ``revert_sync_batchnorm``, as the runner does for a single process), so
    each process normalises over its own batch, with a warning. On GPUs the
    frameworks' own wrapper runs and SyncBN is kept.
    """

    def __init__(self, module, **kwargs) -> None:
        if any(isinstance(m, torch.nn.SyncBatchNorm)
               for m in module.modules()):
            print_log(
                'CPU distributed run: SyncBatchNorm needs GPUs, its layers '
                'become BatchNorm (each process normalises its own batch).',
                logger='current', level=logging.WARNING)
            module = revert_sync_batchnorm(module)
        super().__init__(module=module, **kwargs)


def setup_cpu_distributed(cfg: Config, launcher: str) -> bool:
    """Prepare a distributed CPU run (gloo) when no GPU is available.

    mmengine's ``init_dist`` always calls ``torch.cuda.set_device`` for the
    ``pytorch`` launcher, and its default DDP wrapper pins ``device_ids`` to
    the local rank; both fail on a CPU-only machine. When CUDA is absent this
    initialises the gloo process group from the torchrun environment (the
    runner then skips its own ``init_dist``) and builds the DDP wrapper with
    ``device_ids=None``. With a GPU it changes nothing.

    Args:
        cfg (Config): The config the runner will be built from; its
            ``model_wrapper_cfg`` and ``env_cfg.dist_cfg`` may be updated.
        launcher (str): The job launcher (``'none'``, ``'pytorch'``,
            ``'slurm'`` or ``'mpi'``).

    Returns:
        bool: Whether a CPU process group was initialised here.
    """
    if launcher == 'none' or torch.cuda.is_available():
        return False
    if launcher != 'pytorch':
        raise NotImplementedError(
            f'CPU-only distributed runs support the pytorch launcher '
            f'(torchrun, tools/dist_*.sh), not launcher={launcher!r}')
    dist_cfg = cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})
    dist_cfg['backend'] = 'gloo'
    wrapper = cfg.get('model_wrapper_cfg') or dict(
        type='CPUDistributedDataParallel',
        broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False))
    wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper
    if not torch_dist.is_initialized():
        torch_dist.init_process_group(
            backend='gloo',
            rank=int(os.environ['RANK']),
            world_size=int(os.environ['WORLD_SIZE']))
    return True


def teardown_distributed() -> None:
    """Wait for every rank, then destroy the default process group.

    Without this, a rank that reaches interpreter exit while gloo's worker
    threads are still alive can abort (``terminate called without an active
    exception``) and fail the whole job after its work is done. Safe to call
    when no process group exists.
    """
    if torch_dist.is_available() and torch_dist.is_initialized():
        torch_dist.barrier()
        torch_dist.destroy_process_group()


def write_test_json_on_main_only(runner) -> None:
    """Let only the main process write the test metrics' json file.

    mmengine's ``LoggerHook.after_test_epoch`` has every rank dump the
    metrics to the same ``{log_dir}/{timestamp}.json``; ranks race on the
    file, and a longer write overtaken by a shorter one leaves invalid json
    (seen as ``...}}``). On the other ranks this keeps the hooks' log line
    and drops the dump. Call it after the runner is built.

    Args:
        runner (Runner): The built runner.
    """
    from mmengine.dist import is_main_process
    from mmengine.hooks import LoggerHook

    if is_main_process():
        return

    def log_only(runner, metrics=None):
        _, log_str = runner.log_processor.get_log_after_epoch(
            runner, len(runner.test_dataloader), 'test', with_non_scalar=True)
        runner.logger.info(log_str)

    for hook in runner.hooks:
        if isinstance(hook, LoggerHook):
            hook.after_test_epoch = log_only
