# Copyright (c) mmovl contributors. All rights reserved.
import math

import pytest
import torch
from mmengine.optim.scheduler import CosineAnnealingLR, LinearLR

from mmovl.engine import ClosedFormCosineAnnealingLR, LinearWarmupLR


def _official_lr(epoch, lr, min_lr, warmup_epochs, epochs):
    """MKT's utils/lr_sched.py adjust_learning_rate, for a fractional
    epoch (it is called with i / len(dataloader) + epoch)."""
    if epoch < warmup_epochs:
        return lr * epoch / warmup_epochs
    return min_lr + (lr - min_lr) * 0.5 * (1. + math.cos(
        math.pi * (epoch - warmup_epochs) / (epochs - warmup_epochs)))


def _run(schedulers_of, iters):
    params = [torch.nn.Parameter(torch.zeros(1)) for _ in range(2)]
    # two layer-decay groups: lr scales 1 and 0.65
    optim = torch.optim.AdamW([dict(params=[params[0]], lr=1e-3),
                               dict(params=[params[1]], lr=0.65e-3)])
    schedulers = schedulers_of(optim)
    lrs = []
    for _ in range(iters):
        lrs.append([g['lr'] for g in optim.param_groups])
        for s in schedulers:
            s.step()
    return torch.tensor(lrs, dtype=torch.float64)


def test_warmup_from_zero_then_cosine_is_the_official_schedule():
    per_epoch, warmup, epochs, lr, min_lr = 7, 2, 5, 1e-3, 1e-6
    total = per_epoch * epochs

    def ours(optim):
        return [
            LinearWarmupLR(optim, start_factor=0.0, begin=0,
                           end=warmup * per_epoch, by_epoch=False),
            ClosedFormCosineAnnealingLR(optim, eta_min_ratio=min_lr / lr,
                                        begin=warmup * per_epoch, end=total,
                                        by_epoch=False)]

    got = _run(ours, total)
    expected = torch.tensor(
        [[_official_lr(i / per_epoch, lr, min_lr, warmup, epochs) * scale
          for scale in (1.0, 0.65)] for i in range(total)],
        dtype=torch.float64)
    assert got[0].tolist() == [0.0, 0.0]
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-15)

    # mmengine's chainable LinearLR cannot start at 0, and it reaches the
    # full lr one step early: t / (n - 1) instead of t / n
    def chained(optim):
        return [
            LinearLR(optim, start_factor=1e-3, begin=0,
                     end=warmup * per_epoch, by_epoch=False),
            CosineAnnealingLR(optim, eta_min_ratio=min_lr / lr,
                              begin=warmup * per_epoch, end=total,
                              by_epoch=False)]

    chain = _run(chained, total)
    n = warmup * per_epoch
    assert chain[n - 1, 0] == pytest.approx(lr)
    assert got[n - 1, 0] == pytest.approx(lr * (n - 1) / n)
    assert got[n, 0] == pytest.approx(lr)
