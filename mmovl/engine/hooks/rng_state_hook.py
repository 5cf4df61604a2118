# Copyright (c) mmovl contributors. All rights reserved.
"""Keep the random number generators in checkpoints, so a resumed run
continues exactly where the interrupted one stopped."""
import logging
import random
from typing import List, Optional

import numpy as np
import torch
from mmengine.dist import all_gather_object, get_rank, get_world_size
from mmengine.hooks import CheckpointHook, Hook
from mmengine.logging import print_log
from mmengine.registry import HOOKS

__all__ = ['RNGStateHook', 'get_rng_state', 'set_rng_state']

_KEY = 'rng_states'


def get_rng_state() -> dict:
    """This process's Python, NumPy, torch (and CUDA) generator states, as
    tensors, ints and lists only, so a ``weights_only`` load reads them."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, py_state, py_gauss = random.getstate()
    state = dict(
        python=[version, list(py_state), py_gauss],
        numpy=dict(kind=kind, keys=torch.from_numpy(keys.astype(np.int64)),
                   pos=int(pos), has_gauss=int(has_gauss),
                   gauss=float(gauss)),
        torch=torch.get_rng_state())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore the generator states :func:`get_rng_state` returned."""
    version, py_state, py_gauss = state['python']
    random.setstate((version, tuple(py_state), py_gauss))
    np_state = state['numpy']
    np.random.set_state(
        (np_state['kind'], np_state['keys'].numpy().astype(np.uint32),
         np_state['pos'], np_state['has_gauss'], np_state['gauss']))
    torch.set_rng_state(state['torch'])
    cuda = state.get('cuda')
    if cuda is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)


@HOOKS.register_module()
class RNGStateHook(Hook):
    """Save every process's random generators with each checkpoint and
    restore them on resume; keep validation from moving them.

    mmengine's checkpoints hold the seed but not the generators' states, so
    after ``--resume`` random augmentation (flips, crops), samplers inside a
    model (RPN / RoI sampling) and dropout draw other numbers than the
    uninterrupted run would have. With this hook a resumed run reproduces
    the uninterrupted one:

    - the states of all processes go into ``checkpoint['rng_states']`` (one
      entry per rank). mmengine saves on the main process only, so when the
      run has several processes they are gathered beforehand, in
      ``after_train_epoch`` / ``after_train_iter`` (which every rank runs,
      before ``CheckpointHook``), at the epochs or iterations where
      ``CheckpointHook`` will save;
    - after a resume each process restores its own state where the
      uninterrupted run stood: at the first ``before_train_epoch`` of an
      epoch-based loop (before the epoch's data are drawn), at the first
      ``before_train_iter`` of an iteration-based one (after mmengine has
      skipped the data already trained on);
    - ``before_val`` / ``after_val`` put the states back after each
      validation, so validating (or not) never changes training.

    Exact continuation needs what also makes two uninterrupted runs equal:
    a fixed ``randomness.seed`` and the same number of processes (with
    another number the states are not restored, with a warning). Data
    workers seed themselves from the seed; with iteration-based training
    and ``num_workers=0`` the skipped batches draw from the main process's
    generators, so the first batch after a resume differs.

    The states are tensors, ints and lists: checkpoints stay loadable with
    ``weights_only=True``.
    """

    priority = 'VERY_HIGH'

    def __init__(self) -> None:
        self._pending: Optional[List[dict]] = None
        self._val_state: Optional[dict] = None
        self._gathered: Optional[tuple] = None  # (iteration, states)

    def _gather_if_saving(self, runner, by_epoch: bool) -> None:
        if get_world_size() == 1:
            return  # before_save_checkpoint reads the one state itself
        for hook in runner.hooks:
            if isinstance(hook, CheckpointHook) and hook.by_epoch == by_epoch:
                if by_epoch:
                    due = self.every_n_epochs(
                        runner, hook.interval, hook.save_begin) or (
                            hook.save_last
                            and self.is_last_train_epoch(runner))
                else:
                    due = self.every_n_train_iters(
                        runner, hook.interval, hook.save_begin) or (
                            hook.save_last and self.is_last_train_iter(runner))
                if due:  # a collective: every rank decides alike
                    self._gathered = (runner.iter,
                                      all_gather_object(get_rng_state()))
                return

    def after_train_epoch(self, runner) -> None:
        self._gather_if_saving(runner, by_epoch=True)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        self._gather_if_saving(runner, by_epoch=False)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if get_world_size() == 1:
            checkpoint[_KEY] = [get_rng_state()]
        elif self._gathered is not None and self._gathered[0] == runner.iter:
            checkpoint[_KEY] = self._gathered[1]
        # A save this hook did not foresee (on the main process only) keeps
        # no states: a resume then continues with other random numbers.

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        # Called for ``load_from`` and for ``resume`` alike; which one it
        # was shows when training starts (see ``_restore``).
        states = checkpoint.get(_KEY)
        if states is None:
            return
        if len(states) != get_world_size():
            print_log(
                f'RNGStateHook: the checkpoint holds the random states of '
                f'{len(states)} processes, this run has {get_world_size()}; '
                f'they are not restored, so the run continues with other '
                f'random numbers than an uninterrupted one would.',
                logger='current', level=logging.WARNING)
            return
        self._pending = states

    def _restore(self, runner) -> None:
        # Only a resumed run continues at iteration > 0; weights loaded with
        # ``load_from`` (e.g. stage 2 from stage 1) start a new sequence.
        if self._pending is not None and runner.iter > 0:
            set_rng_state(self._pending[get_rank()])
        self._pending = None

    def before_train_epoch(self, runner) -> None:
        if not _iter_based(runner):
            self._restore(runner)

    def before_train_iter(self, runner, batch_idx: int,
                          data_batch=None) -> None:
        self._restore(runner)

    def before_val(self, runner) -> None:
        self._val_state = get_rng_state()

    def after_val(self, runner) -> None:
        if self._val_state is not None:
            set_rng_state(self._val_state)
            self._val_state = None


def _iter_based(runner) -> bool:
    from mmengine.runner import IterBasedTrainLoop
    return isinstance(runner.train_loop, IterBasedTrainLoop)
