# Copyright (c) mmovl contributors. All rights reserved.
import random
from types import SimpleNamespace

import numpy as np
import torch

from mmovl.engine import RNGStateHook
from mmovl.engine.hooks.rng_state_hook import get_rng_state, set_rng_state
from mmovl.utils import safe_torch_load


def _draw():
    return (random.random(), float(np.random.rand()),
            float(np.random.randn()), torch.rand(3).tolist())


def _runner(iteration, iter_based=False):
    # What the hook reads of a runner: the loop kind and the iteration.
    from mmengine.runner import IterBasedTrainLoop
    loop = IterBasedTrainLoop.__new__(IterBasedTrainLoop) if iter_based \
        else object()
    return SimpleNamespace(iter=iteration, train_loop=loop)


def test_state_survives_a_weights_only_checkpoint(tmp_path):
    """Saved into a checkpoint, loaded with weights_only=True and restored,
    the generators draw what they would have drawn."""
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    np.random.randn()  # a cached Gaussian is part of NumPy's state
    ckpt = {}
    RNGStateHook().before_save_checkpoint(None, ckpt)
    expected = _draw()
    torch.save(ckpt, tmp_path / 'c.pth')
    loaded = safe_torch_load(str(tmp_path / 'c.pth'))  # weights_only=True
    random.seed(7), np.random.seed(7), torch.manual_seed(7)
    hook = RNGStateHook()
    hook.after_load_checkpoint(_runner(4), loaded)
    hook.before_train_epoch(_runner(4))
    assert _draw() == expected


def test_restored_when_training_starts_not_at_load():
    """Epoch-based: at the first before_train_epoch; iteration-based: at
    the first before_train_iter (after mmengine skipped the trained data);
    weights loaded for fine-tuning (iteration 0) are not restored."""
    torch.manual_seed(3)
    ckpt = {}
    RNGStateHook().before_save_checkpoint(None, ckpt)
    expected = torch.rand(4)

    hook = RNGStateHook()
    hook.after_load_checkpoint(None, ckpt)
    torch.manual_seed(9)
    hook.before_train_epoch(_runner(2, iter_based=True))  # not yet
    torch.rand(2)  # e.g. the skipped batches
    hook.before_train_iter(_runner(2, iter_based=True), 0)
    assert torch.equal(torch.rand(4), expected)

    hook.after_load_checkpoint(None, ckpt)
    torch.manual_seed(9)
    hook.before_train_epoch(_runner(0))  # load_from: a new run
    assert not torch.equal(torch.rand(4), expected)


def test_other_world_size_is_not_restored():
    torch.manual_seed(3)
    ckpt = {}
    RNGStateHook().before_save_checkpoint(None, ckpt)
    ckpt['rng_states'] = ckpt['rng_states'] * 2  # written by 2 processes
    expected = torch.rand(4)
    hook = RNGStateHook()
    hook.after_load_checkpoint(None, ckpt)
    torch.manual_seed(9)
    hook.before_train_epoch(_runner(2))
    assert not torch.equal(torch.rand(4), expected)


def test_validation_does_not_move_the_generators():
    torch.manual_seed(5)
    hook = RNGStateHook()
    expected = torch.rand(3)
    torch.manual_seed(5)
    hook.before_val(None)
    torch.rand(100)  # a validation loader drawing its seed, dropout...
    hook.after_val(None)
    assert torch.equal(torch.rand(3), expected)


def test_set_rng_state_inverts_get_rng_state():
    state = get_rng_state()
    first = _draw()
    set_rng_state(state)
    assert _draw() == first


def test_several_processes_gather_where_checkpoint_hook_saves(monkeypatch):
    """mmengine saves on the main process only: with several processes the
    states are gathered (a collective every rank runs) at the iterations
    where CheckpointHook saves, and the save uses them."""
    from mmengine.hooks import CheckpointHook
    from mmengine.runner import IterBasedTrainLoop

    import mmovl.engine.hooks.rng_state_hook as mod
    calls = []

    def fake_gather(obj):
        calls.append(obj)
        return [obj, 'rank 1 state']

    monkeypatch.setattr(mod, 'get_world_size', lambda: 2)
    monkeypatch.setattr(mod, 'all_gather_object', fake_gather)
    loop = IterBasedTrainLoop.__new__(IterBasedTrainLoop)
    loop._max_iters = 10
    runner = SimpleNamespace(
        iter=0, train_loop=loop, max_iters=10,
        hooks=[CheckpointHook(interval=4, by_epoch=False)])
    hook = RNGStateHook()
    saved_at = []
    for it in range(10):
        runner.iter = it
        hook.after_train_iter(runner, it)
        if (it + 1) % 4 == 0 or it == 9:  # where CheckpointHook saves
            ckpt = {}
            hook.before_save_checkpoint(runner, ckpt)
            assert ckpt['rng_states'][1] == 'rank 1 state'
            saved_at.append(it)
    assert len(calls) == len(saved_at) == 3  # iterations 4, 8, 10
    # an unforeseen save stores nothing rather than rank 0's state alone
    runner.iter = 5
    ckpt = {}
    hook.before_save_checkpoint(runner, ckpt)
    assert 'rng_states' not in ckpt
