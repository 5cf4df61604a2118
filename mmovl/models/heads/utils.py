# Copyright (c) mmovl contributors. All rights reserved.
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, Sequence, Tuple

import numpy as np
import torch
from mmpretrain.structures import DataSample


def multi_hot_targets(data_samples: Sequence[DataSample],
                      num_classes: int,
                      device: torch.device,
                      allow_unknown: bool = True) -> torch.Tensor:
    """(B, C) float targets over the current vocabulary of ``num_classes``.

    A sample's ``gt_score`` is used as is (1 positive, 0 negative, -1
    unknown); otherwise its ``gt_label`` indices become a multi-hot row.

    Args:
        data_samples (Sequence[DataSample]): The batch's samples.
        num_classes (int): Size of the vocabulary scored.
        device (torch.device): Where the targets go.
        allow_unknown (bool): Accept -1 entries (losses that ignore them);
            False makes them an error. Defaults to True.

    Returns:
        torch.Tensor: The targets, float32.
    """
    targets = []
    for sample in data_samples:
        if 'gt_score' in sample:
            target = torch.as_tensor(sample.gt_score).flatten().float()
            if target.numel() != num_classes:
                raise ValueError(
                    f'gt_score has {target.numel()} entries but the '
                    f'vocabulary has {num_classes} labels.')
            if not allow_unknown and (target < 0).any():
                raise ValueError('This loss takes no unknown (-1) labels in '
                                 'gt_score.')
        else:
            index = torch.as_tensor(sample.gt_label).long().flatten()
            if index.numel() and (index.min() < 0
                                  or index.max() >= num_classes):
                raise ValueError(
                    f'gt_label {index.tolist()} is out of the vocabulary '
                    f'of {num_classes} labels.')
            target = torch.zeros(num_classes)
            target[index] = 1
        targets.append(target.to(device, torch.float32))
    return torch.stack(targets)


def check_label_embeds(label_embeds: torch.Tensor, channels: int) -> None:
    """Raise a ValueError unless ``label_embeds`` is a (C, ``channels``)
    tensor with C > 0, naming the shape it got."""
    if (not isinstance(label_embeds, torch.Tensor) or label_embeds.dim() != 2
            or label_embeds.shape[1] != channels
            or label_embeds.shape[0] == 0):
        shape = tuple(getattr(label_embeds, 'shape', ()))
        raise ValueError(f'label_embeds must have shape (C, {channels}) with '
                         f'C > 0, got {shape}.')


# Thread pools for topk_mean's NumPy path, by size (np.partition releases
# the GIL, so the pieces of one call run in parallel). Keyed by process id
# too: a forked child (a data loader worker, a forked launcher) inherits the
# dict but not the threads, and would wait forever on the parent's pool.
_POOLS: Dict[Tuple[int, int], ThreadPoolExecutor] = {}
# Below this many entries one thread does it: splitting costs more.
_PARALLEL_MIN_NUMEL = 1 << 16


def _pool(workers: int) -> ThreadPoolExecutor:
    key = (os.getpid(), workers)
    if key not in _POOLS:
        _POOLS[key] = ThreadPoolExecutor(
            workers, thread_name_prefix='mmovl-topk')
    return _POOLS[key]


def _np_topk_sum(a: np.ndarray, k: int, axis: int) -> np.ndarray:
    n = a.shape[axis]
    values = np.partition(a, n - k, axis=axis)
    return np.take(values, np.arange(n - k, n), axis=axis).sum(axis=axis)


def topk_mean(x: torch.Tensor, k: int, dim: int) -> torch.Tensor:
    """The mean of the ``k`` largest entries of ``x`` along ``dim``.

    ``k`` larger than the size of ``dim`` means all entries. Where no
    gradient is needed and ``x`` is a float32/float64 CPU tensor (inference
    on a CPU), the top ``k`` are selected with NumPy's ``np.partition``,
    which moves values only: on a (196, 10,000) score map it is about 4x
    faster than ``torch.topk``, which also tracks indices and sorts its
    output (``bench/bench_vocab_cost.py``). Large inputs are split along
    their longest other dimension over ``torch.get_num_threads()`` threads,
    as torch's own ops would use. Both paths select the same values; their
    sums may differ in the last bit (summation order).

    Args:
        x (torch.Tensor): The values.
        k (int): How many of the largest to average, >= 1.
        dim (int): The dimension to reduce.

    Returns:
        torch.Tensor: ``x`` reduced along ``dim``.
    """
    n = x.shape[dim]
    k = min(int(k), n)
    if k < 1:
        raise ValueError(f'k must be >= 1, got {k}.')
    if k == n:
        return x.mean(dim)
    if not (x.device.type == 'cpu'
            and x.dtype in (torch.float32, torch.float64)
            and not (torch.is_grad_enabled() and x.requires_grad)):
        return x.topk(k, dim=dim).values.mean(dim)
    a = x.detach().numpy()
    axis = dim % a.ndim
    others = [i for i in range(a.ndim) if i != axis]
    workers = torch.get_num_threads()
    if workers < 2 or not others or a.size < _PARALLEL_MIN_NUMEL:
        return torch.from_numpy(_np_topk_sum(a, k, axis) / k)
    split = max(others, key=lambda i: a.shape[i])
    pieces = np.array_split(a, min(workers, a.shape[split]), axis=split)
    sums = _pool(len(pieces)).map(lambda p: _np_topk_sum(p, k, axis), pieces)
    out_axis = split - (split > axis)  # the reduced axis is gone
    return torch.from_numpy(np.concatenate(list(sums), axis=out_axis) / k)
