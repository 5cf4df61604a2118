# Copyright (c) mmovl contributors. All rights reserved.
import json
import os.path as osp
from types import SimpleNamespace
from unittest import mock

from mmengine.hooks import LoggerHook

from mmovl.utils import write_test_json_on_main_only


class _LogProcessor:

    def get_log_after_epoch(self, runner, batch_idx, mode, **kwargs):
        return {'multi-label/mAP': 50.0}, 'Epoch(test) mAP: 50.0'


def _runner(tmp_path):
    logs = []
    runner = SimpleNamespace(
        log_dir=str(tmp_path), test_dataloader=[0, 1],
        log_processor=_LogProcessor(),
        logger=SimpleNamespace(info=logs.append),
        hooks=[LoggerHook()])
    runner.hooks[0].json_log_path = 'metrics.json'
    return runner, logs


def test_only_the_main_process_writes_the_test_json(tmp_path):
    path = osp.join(tmp_path, 'metrics.json')
    # another rank: logs the line, writes no file
    runner, logs = _runner(tmp_path)
    with mock.patch('mmengine.dist.is_main_process', return_value=False):
        write_test_json_on_main_only(runner)
    runner.hooks[0].after_test_epoch(runner, metrics={})
    assert logs == ['Epoch(test) mAP: 50.0']
    assert not osp.exists(path)
    # the main process: mmengine's hook unchanged, the json written
    runner, logs = _runner(tmp_path)
    with mock.patch('mmengine.dist.is_main_process', return_value=True):
        write_test_json_on_main_only(runner)
    runner.hooks[0].after_test_epoch(runner, metrics={})
    assert logs == ['Epoch(test) mAP: 50.0']
    with open(path) as f:
        assert json.load(f) == {'multi-label/mAP': 50.0}


def test_cpu_ddp_wrapper_takes_syncbn_models(tmp_path):
    """DDP refuses SyncBN on CPU; the CPU wrapper (what setup_cpu_distributed
    picks) turns it into BatchNorm with the same statistics and weights, and
    the wrapped model trains a step."""
    import pytest
    import torch
    import torch.distributed as dist
    from mmengine.model import BaseModel, MMDistributedDataParallel
    from mmengine.optim import OptimWrapper

    from mmovl.utils import CPUDistributedDataParallel

    class Net(BaseModel):

        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3)
            self.norm = torch.nn.SyncBatchNorm(4)

        def forward(self, inputs, data_samples=None, mode='loss'):
            return dict(loss=self.norm(self.conv(inputs)).pow(2).mean())

    dist.init_process_group(
        'gloo', init_method=f'file://{tmp_path}/store', rank=0, world_size=1)
    try:
        torch.manual_seed(0)
        net = Net()
        net.norm.weight.data.uniform_()
        with pytest.raises(ValueError, match='SyncBatchNorm'):
            MMDistributedDataParallel(module=Net(), device_ids=None)
        ddp = CPUDistributedDataParallel(module=net, device_ids=None)
        norm = ddp.module.norm
        assert not isinstance(norm, torch.nn.SyncBatchNorm)
        assert isinstance(norm, torch.nn.modules.batchnorm._BatchNorm)
        assert torch.equal(norm.weight, net.norm.weight)
        optim = OptimWrapper(torch.optim.SGD(ddp.parameters(), lr=0.1))
        losses = ddp.train_step(dict(inputs=torch.randn(2, 3, 8, 8)), optim)
        assert torch.isfinite(losses['loss'])
        assert norm.num_batches_tracked.item() == 1
    finally:
        dist.destroy_process_group()


def test_setup_cpu_distributed_picks_the_cpu_wrapper(monkeypatch):
    from mmengine.config import Config

    from mmovl.utils import setup_cpu_distributed
    monkeypatch.setattr('torch.cuda.is_available', lambda: False)
    monkeypatch.setattr('torch.distributed.is_initialized', lambda: True)
    cfg = Config(dict(env_cfg=dict(dist_cfg=dict(backend='nccl'))))
    assert setup_cpu_distributed(cfg, 'pytorch')
    assert cfg.model_wrapper_cfg.type == 'CPUDistributedDataParallel'
    assert cfg.model_wrapper_cfg.device_ids is None
    assert cfg.env_cfg.dist_cfg.backend == 'gloo'
