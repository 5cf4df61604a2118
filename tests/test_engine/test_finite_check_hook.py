# Copyright (c) mmovl contributors. All rights reserved.
from types import SimpleNamespace

import pytest
import torch
import torch.nn as nn
from mmengine.config import Config

from mmovl.engine.hooks import FiniteCheckHook


def _runner(tmp_path, model, load_from=None, resume=False):
    return SimpleNamespace(
        model=model, work_dir=str(tmp_path), iter=41, epoch=2,
        cfg=Config(dict(load_from=load_from, resume=resume)))


def test_a_non_finite_loss_stops_the_run_with_where(tmp_path):
    hook = FiniteCheckHook()
    runner = _runner(tmp_path, nn.Linear(2, 2), load_from='epoch_2.pth')
    hook.before_train(runner)
    fine = dict(loss=torch.tensor(0.5), loss_cls=torch.tensor(0.5))
    hook.after_train_iter(runner, 0, outputs=fine)  # nothing happens
    for bad in (float('nan'), float('inf')):
        outputs = dict(loss=torch.tensor(bad), loss_cls=torch.tensor(bad))
        with pytest.raises(RuntimeError,
                           match='iteration 42 .epoch 3.* started from '
                           'epoch_2.pth'):
            hook.after_train_iter(runner, 0, outputs=outputs)


def test_damaged_weights_are_refused_naming_the_checkpoint(tmp_path):
    model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    hook = FiniteCheckHook()
    hook.before_train(_runner(tmp_path, model, load_from='a.pth'))  # fine
    model[1].running_var[0] = float('nan')
    # a run from scratch has no checkpoint to blame: not checked
    hook.before_train(_runner(tmp_path, model))
    with pytest.raises(ValueError, match=r'a.pth holds non-finite values in '
                       r"1 tensors, e.g. \['1.running_var'\]"):
        hook.before_train(_runner(tmp_path, model, load_from='a.pth'))
    # --resume (auto) blames the latest checkpoint of the work dir
    (tmp_path / 'epoch_3.pth').write_bytes(b'')
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'epoch_3.pth'))
    with pytest.raises(ValueError, match='epoch_3.pth holds non-finite'):
        hook.before_train(_runner(tmp_path, model, resume=True))


def test_non_persistent_buffers_are_not_the_checkpoints(tmp_path):
    """A model's own non-persistent buffers (e.g. open_clip's causal mask,
    -inf above the diagonal) are not loaded from the checkpoint: a resume
    of a model with a CLIP text tower is not refused."""
    model = nn.Linear(2, 2)
    model.register_buffer('attn_mask', torch.full((3, 3), float('-inf')),
                          persistent=False)
    FiniteCheckHook().before_train(_runner(tmp_path, model, load_from='a.pth'))
    model.weight.data[0, 0] = float('inf')
    with pytest.raises(ValueError, match=r"e.g. \['weight'\]"):
        FiniteCheckHook().before_train(
            _runner(tmp_path, model, load_from='a.pth'))
