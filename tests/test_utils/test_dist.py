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
