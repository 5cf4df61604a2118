# Copyright (c) mmovl contributors. All rights reserved.
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Optional, Sequence, Tuple

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


# Below this many entries one thread does topk_mean: splitting costs more.
PARALLEL_MIN_NUMEL = 1 << 16


class TopkThreads:
    """The worker threads of :func:`topk_mean`'s NumPy path, owned by
    whoever holds this object (:class:`TwoStreamHead` keeps one).

    ``np.partition`` releases the GIL, so the pieces of one large input run
    in parallel. The thread pool is created at the first call that needs it
    and kept for later calls; it is made anew when the number of threads
    changes and in a forked child (a data loader worker, a forked launcher),
    which inherits this object but not its threads and would otherwise wait
    forever on them. :meth:`close` (or leaving a ``with`` block) stops the
    threads; a later call starts new ones. A copy (``copy.deepcopy`` of a
    model) or an unpickled object has the settings and no threads.

    Args:
        num_threads (int, optional): Threads to split a large input over.
            None: ``torch.get_num_threads()`` at each call, as torch's own
            ops use. 1 keeps the work in the calling thread.
            Defaults to None.
        min_numel (int): Inputs with fewer entries stay in the calling
            thread. Defaults to :data:`PARALLEL_MIN_NUMEL` (65536).

    Examples:
        >>> import torch
        >>> with TopkThreads(2, min_numel=0) as threads, torch.no_grad():
        ...     topk_mean(torch.arange(8.).reshape(2, 4), 2, 1, threads)
        tensor([2.5000, 6.5000])
    """

    def __init__(self,
                 num_threads: Optional[int] = None,
                 min_numel: int = PARALLEL_MIN_NUMEL) -> None:
        if num_threads is not None and int(num_threads) < 1:
            raise ValueError(f'num_threads must be >= 1 or None, got '
                             f'{num_threads}.')
        self.num_threads = None if num_threads is None else int(num_threads)
        self.min_numel = int(min_numel)
        self._executor: Optional[ThreadPoolExecutor] = None
        self._owner: Optional[Tuple[int, int]] = None  # (pid, threads)

    @property
    def workers(self) -> int:
        """The number of threads a call may use now."""
        if self.num_threads is not None:
            return self.num_threads
        return torch.get_num_threads()

    def map(self, func: Callable, items: Sequence) -> list:
        """``[func(item) for item in items]``, run on the pool's threads.

        Args:
            func (Callable): Called once per item, in the threads.
            items (Sequence): The items.

        Returns:
            list: The results, in the order of ``items``.
        """
        owner = (os.getpid(), self.workers)
        if self._owner != owner:
            self._shutdown()
            self._executor = ThreadPoolExecutor(
                owner[1], thread_name_prefix='mmovl-topk')
            self._owner = owner
        return list(self._executor.map(func, items))

    def _shutdown(self) -> None:
        # A forked child's copy of the parent's pool has no threads: drop
        # it without waiting on them.
        if self._executor is not None and self._owner[0] == os.getpid():
            self._executor.shutdown(wait=True)
        self._executor = self._owner = None

    def close(self) -> None:
        """Stop the threads (after the work they have); a later call starts
        new ones."""
        self._shutdown()

    def __enter__(self) -> 'TopkThreads':
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __getstate__(self) -> dict:
        return dict(num_threads=self.num_threads, min_numel=self.min_numel)

    def __setstate__(self, state: dict) -> None:
        self.__init__(**state)

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(num_threads={self.num_threads}, '
                f'min_numel={self.min_numel})')


def _np_topk_sum(a: np.ndarray, k: int, axis: int) -> np.ndarray:
    n = a.shape[axis]
    values = np.partition(a, n - k, axis=axis)
    return np.take(values, np.arange(n - k, n), axis=axis).sum(axis=axis)


def _graph_capture() -> bool:
    """Whether the caller is being traced into a graph (the TorchScript
    tracer of ``torch.onnx.export(dynamo=False)``, or ``torch.export`` /
    ``torch.compile``, which ``torch.onnx.export``'s default uses): NumPy
    cannot be part of a graph, so the top-k stays ``torch.topk`` there."""
    return torch.jit.is_tracing() or torch.compiler.is_compiling()


def topk_mean(x: torch.Tensor,
              k: int,
              dim: int,
              threads: Optional[TopkThreads] = None) -> torch.Tensor:
    """The mean of the ``k`` largest entries of ``x`` along ``dim``.

    ``k`` larger than the size of ``dim`` means all entries. Where no
    gradient is needed and ``x`` is a float32/float64 CPU tensor (inference
    on a CPU), the top ``k`` are selected with NumPy's ``np.partition``,
    which moves values only: on a (196, 10,000) score map it is about 4x
    faster than ``torch.topk``, which also tracks indices and sorts its
    output (``bench/bench_vocab_cost.py``). Large inputs are split along
    their longest other dimension over the threads of ``threads``. Both
    paths select the same values; their sums may differ in the last bit
    (summation order). While a graph is captured (ONNX export,
    ``torch.export``, ``torch.compile``), it is ``torch.topk``.

    Args:
        x (torch.Tensor): The values.
        k (int): How many of the largest to average, >= 1.
        dim (int): The dimension to reduce.
        threads (TopkThreads, optional): The threads to split a large input
            over, kept between calls by the caller. Defaults to None: up to
            ``torch.get_num_threads()`` threads, started for this call and
            stopped at its end.

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
            and not (torch.is_grad_enabled() and x.requires_grad)
            and not _graph_capture()):
        return x.topk(k, dim=dim).values.mean(dim)
    a = x.detach().numpy()
    axis = dim % a.ndim
    others = [i for i in range(a.ndim) if i != axis]
    pool = threads if threads is not None else TopkThreads()
    workers = pool.workers
    if workers < 2 or not others or a.size < pool.min_numel:
        return torch.from_numpy(_np_topk_sum(a, k, axis) / k)
    split = max(others, key=lambda i: a.shape[i])
    pieces = np.array_split(a, min(workers, a.shape[split]), axis=split)
    try:
        sums = pool.map(lambda p: _np_topk_sum(p, k, axis), pieces)
    finally:
        if threads is None:
            pool.close()  # its threads served this call alone
    out_axis = split - (split > axis)  # the reduced axis is gone
    return torch.from_numpy(np.concatenate(sums, axis=out_axis) / k)
