# Copyright (c) mmovl contributors. All rights reserved.
import math
from typing import Optional

import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS
from mmengine.runner import find_latest_checkpoint


@HOOKS.register_module()
class FiniteCheckHook(Hook):
    """Stop training on non-finite numbers, saying where they came from.

    - Before training, after mmengine has loaded ``load_from`` or resumed:
      every parameter and buffer of the model must be finite, else the
      checkpoint (named) is refused. A bit-flipped checkpoint used to train a
      whole epoch at loss NaN and save a NaN checkpoint.
    - After every training iteration, before any checkpoint of it is saved
      (this hook runs before ``CheckpointHook``): the loss must be finite,
      else training stops with the iteration, the epoch and the checkpoint
      the run started from. mmdet's ``CheckInvalidLossHook`` checks every
      ``interval`` iterations; this one checks each (a scalar comparison).

    Examples:
        >>> default_hooks = dict(finite_check=dict(type='FiniteCheckHook'))
    """

    priority = 'ABOVE_NORMAL'

    def __init__(self) -> None:
        self._source: Optional[str] = None

    @staticmethod
    def _started_from(runner) -> Optional[str]:
        """The checkpoint this run loaded or resumed from, if any."""
        cfg = runner.cfg
        load_from = cfg.get('load_from')
        if cfg.get('resume') and not load_from:
            load_from = find_latest_checkpoint(runner.work_dir)
        return load_from

    def before_train(self, runner) -> None:
        self._source = self._started_from(runner)
        if self._source is None:
            return
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        # what a checkpoint holds: not the non-persistent buffers, which the
        # model builds itself (CLIP's causal attention mask is -inf by design)
        bad = [
            name for name, t in model.state_dict().items()
            if t.is_floating_point() and not bool(torch.isfinite(t).all())
        ]
        if bad:
            raise ValueError(
                f'The checkpoint {self._source} holds non-finite values in '
                f'{len(bad)} tensors, e.g. {bad[:5]}: it is damaged (or was '
                'saved after training diverged); start from another one.')

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        if not outputs or 'loss' not in outputs:
            return
        loss = outputs['loss']
        value = float(loss.detach()) if isinstance(loss, torch.Tensor) \
            else float(loss)
        if math.isfinite(value):
            return
        source = f', which started from {self._source}' if self._source \
            else ''
        terms = {
            k: float(v) for k, v in outputs.items()
            if isinstance(v, (torch.Tensor, float, int)) and k != 'loss'
            and (not isinstance(v, torch.Tensor) or v.numel() == 1)
        }
        raise RuntimeError(
            f'Training stopped: the loss is {value} at iteration '
            f'{runner.iter + 1} (epoch {runner.epoch + 1}) of the run in '
            f'{runner.work_dir}{source}; loss terms: {terms}. No checkpoint '
            'of this iteration was saved.')
