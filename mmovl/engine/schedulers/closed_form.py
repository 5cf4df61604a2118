# Copyright (c) mmovl contributors. All rights reserved.
"""Learning-rate schedules computed in closed form from the base lr.

mmengine's ``LinearLR`` and ``CosineAnnealingLR`` update the lr
multiplicatively from its current value. Two consequences matter when a
recipe must follow another code base step for step (MKT's official
``utils/lr_sched.py``: ``lr * t / warmup`` from 0, then a half-cycle cosine
from the full lr):

- ``LinearLR`` cannot start from 0 (the next factor divides by it), and
  it reaches the end factor at its last step (``t / (n - 1)`` of ``n``
  steps) where a warm-up ``t / n`` reaches it at the step after;
- so a ``CosineAnnealingLR`` after ``LinearWarmupLR`` would start from the
  warm-up's last value, ``base * (1 - 1 / n)``, not from ``base``.

These two subclasses compute each value from the group's base lr and the
step alone. Everything else (``begin`` / ``end``, ``by_epoch``,
``convert_to_iter_based``, the state dict for resuming) is mmengine's.
"""
import math

from mmengine.optim.scheduler import CosineAnnealingLR, LinearLR
from mmpretrain.registry import PARAM_SCHEDULERS


@PARAM_SCHEDULERS.register_module()
class LinearWarmupLR(LinearLR):
    """A linear warm-up in closed form: at step ``t`` of the
    ``n = end - begin`` steps the lr is
    ``base * (start + (end_factor - start) * t / n)``, so
    ``start_factor=0`` warms up from 0 and the end factor is reached at
    ``end``, where the next scheduler takes over.

    Args:
        start_factor (float): Factor at the first step, in [0, 1].
            Defaults to 0.
        **kwargs: The other arguments of mmengine's ``LinearLR``.

    Examples:
        >>> # 2 warm-up epochs from lr 0, stepped per iteration
        >>> param_scheduler = [
        ...     dict(type='LinearWarmupLR', start_factor=0.0, begin=0, end=2,
        ...          by_epoch=True, convert_to_iter_based=True)]
    """

    def __init__(self, optimizer, start_factor: float = 0.0, **kwargs):
        super().__init__(optimizer, start_factor=start_factor, **kwargs)

    def _get_value(self):
        steps = self.total_iters + 1  # mmengine's total_iters is n - 1
        step = min(self.last_step, steps)
        factor = self.start_factor + (self.end_factor - self.start_factor) * \
            step / steps
        return [base * factor for base in self.base_values]


@PARAM_SCHEDULERS.register_module()
class ClosedFormCosineAnnealingLR(CosineAnnealingLR):
    """``CosineAnnealingLR`` in closed form: at step ``t`` the lr is
    ``eta_min + (base - eta_min) * (1 + cos(pi * t / T_max)) / 2``, starting
    from the base lr whatever a warm-up before it left. ``eta_min_ratio``
    gives each parameter group its own minimum (``base * ratio``, e.g. the
    min lr scaled by layer-wise decay).

    Args:
        **kwargs: The arguments of mmengine's ``CosineAnnealingLR``.
    """

    def _get_value(self):
        step = min(self.last_step, self.T_max)
        cosine = (1 + math.cos(math.pi * step / self.T_max)) / 2
        values = []
        for base in self.base_values:
            eta_min = self.eta_min if self.eta_min_ratio is None else \
                base * self.eta_min_ratio
            values.append(eta_min + (base - eta_min) * cosine)
        return values
