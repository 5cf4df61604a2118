# Copyright (c) mmovl contributors. All rights reserved.
"""Multi-label ranking metrics for (generalised) zero-shot evaluation.

These kernels use numpy and torch only, so they can be imported without any
OpenMMLab registry. They are written for test sets of the size of NUS-WIDE
(about 10^5 images x 10^3 labels): every label's scores are sorted once and
only the positive entries are looked up in the sorted column, instead of
ranking every (image, label) pair as a per-sample loop would. The work is
split over up to ``torch.get_num_threads()`` threads.

The metric functions validate their inputs on every call. A caller that
computes several metrics of one score matrix (such as
:class:`mmovl.evaluation.ZSLMultiLabelMetric`) validates it once with
:func:`check_scores` / :func:`check_k`, finds its positive entries once with
:func:`find_positives` and calls the kernels on validated inputs:
:func:`average_precision_kernel` and :func:`precision_recall_f1_kernel`.
"""
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, List, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np
import torch

ArrayLike = Union[np.ndarray, torch.Tensor, Sequence]

# Columns handled per work item: ~4M scores (16 MB in float32) keeps a
# transposed block in cache-friendly pieces while amortising Python overhead.
_CHUNK_ELEMENTS = 1 << 22
# Rows per copy when transposing; a 512-row strip of a column block fits in L2.
_ROW_BLOCK = 512
# Scores per block of images for the top-k partition (8 MB in float32).
_PARTITION_ELEMENTS = 1 << 21
# Images handled at once when breaking ties at the k-th score.
_TIE_ROW_BLOCK = 4096


def to_numpy(x: ArrayLike) -> np.ndarray:
    """Convert a tensor or array-like to a numpy array without copying when
    possible.

    A tensor is detached and moved to the CPU; float16 and bfloat16 tensors
    become float32 (numpy has no bfloat16).

    Args:
        x (np.ndarray | torch.Tensor | Sequence): The values.

    Returns:
        np.ndarray: The values as an array.
    """
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        if x.dtype in (torch.float16, torch.bfloat16):
            x = x.float()
        return x.numpy()
    return np.asarray(x)


def check_scores(scores: ArrayLike) -> np.ndarray:
    """Return ``scores`` as a finite float32/float64 (N, C) array.

    Args:
        scores (np.ndarray | torch.Tensor | Sequence): Scores of shape
            (N, C), N >= 1 images and C >= 1 labels. float16 becomes
            float32, integers become float64.

    Returns:
        np.ndarray: The scores, not copied when they are float32/float64
        already.

    Raises:
        ValueError: For another number of dimensions, an empty axis, a
            non-real dtype or a NaN / infinite entry (the first one's image
            and label are named).
    """
    scores = to_numpy(scores)
    if scores.ndim != 2:
        raise ValueError('scores must be a 2-D (N, C) array, got shape '
                         f'{scores.shape}.')
    if scores.shape[0] == 0 or scores.shape[1] == 0:
        raise ValueError('scores must have at least one image and one label, '
                         f'got shape {scores.shape}.')
    if scores.dtype == np.float16:
        scores = scores.astype(np.float32)
    elif scores.dtype.kind in 'iu':
        scores = scores.astype(np.float64)
    elif scores.dtype not in (np.float32, np.float64):
        raise ValueError('scores must be a real-valued array, got dtype '
                         f'{scores.dtype}.')
    # A finite sum proves every entry finite and costs half of np.isfinite;
    # only a non-finite sum (or an overflow) needs the element-wise check.
    with np.errstate(over='ignore', invalid='ignore'):
        total = scores.sum()
    if not np.isfinite(total):
        bad = ~np.isfinite(scores)
        if bad.any():
            i, j = np.argwhere(bad)[0]
            kind = 'NaN' if np.isnan(scores[i, j]) else 'infinite'
            raise ValueError(f'scores contain {kind} values '
                             f'(first at image {i}, label {j}).')
    return scores


def _check_binary(values: ArrayLike, shape: Tuple[int, int],
                  name: str) -> np.ndarray:
    """Return ``values`` as a bool array of ``shape`` whose entries were all 0
    or 1."""
    values = to_numpy(values)
    if values.shape != tuple(shape):
        raise ValueError(f'{name} must have the same shape as scores '
                         f'{tuple(shape)}, got {values.shape}.')
    if values.dtype == np.bool_:
        return values
    if values.dtype.kind in 'iu':
        # Two reductions are much cheaper than an element-wise membership test.
        if values.min() >= 0 and values.max() <= 1:
            if values.dtype.itemsize == 1:
                return values.view(np.bool_)
            return values.astype(np.bool_)
        ok = (values == 0) | (values == 1)
    elif values.dtype.kind == 'f':
        ok = (values == 0) | (values == 1)
        if ok.all():
            return values == 1
    else:
        raise ValueError(f'{name} must be numeric or bool, got dtype '
                         f'{values.dtype}.')
    i, j = np.argwhere(~ok)[0]
    raise ValueError(f'{name} must contain only 0 and 1, found '
                     f'{values[i, j]} at image {i}, label {j}.')


def check_k(k: Union[int, Sequence[int]]) -> Tuple[List[int], bool]:
    """Return the values of ``k`` as a list and whether a single int was
    given.

    Args:
        k (int | Sequence[int]): One or several positive ints (``bool`` is
            refused).

    Returns:
        tuple[list[int], bool]: The values, and True when ``k`` was a
        single int.

    Raises:
        ValueError: For an empty sequence or a value that is not a positive
            int.
    """
    single = not isinstance(k, (list, tuple))
    ks = [k] if single else list(k)
    if not ks:
        raise ValueError('k must be a positive int or a non-empty sequence.')
    for value in ks:
        is_int = isinstance(value, (int, np.integer))
        if not is_int or isinstance(value, bool) or value < 1:
            raise ValueError(f'k must be a positive int, got {value!r}.')
    return [int(v) for v in ks], single


def _num_workers() -> int:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, torch.get_num_threads()))


def _run_parallel(func: Callable, ranges: List[Tuple[int, int]]) -> None:
    """Call ``func(start, end)`` for every range, in threads when there are
    several cores. numpy releases the GIL while it copies, sorts, partitions
    and searches, which is where the time goes."""
    workers = min(_num_workers(), len(ranges))
    if workers <= 1:
        for start, end in ranges:
            func(start, end)
        return
    with ThreadPoolExecutor(workers) as pool:
        for job in [pool.submit(func, *r) for r in ranges]:
            job.result()


def _ranges(total: int, step: int) -> List[Tuple[int, int]]:
    return [(i, min(total, i + step)) for i in range(0, total, step)]


class Positives(NamedTuple):
    """The positive entries of a label matrix and their scores, in row-major
    order (the order that reads the score matrix sequentially), as
    :func:`find_positives` returns them.

    Attributes:
        rows (np.ndarray): Image index of each positive entry.
        cols (np.ndarray): Label index of each positive entry.
        scores (np.ndarray): Score of each positive entry.
    """
    rows: np.ndarray
    cols: np.ndarray
    scores: np.ndarray


def find_positives(scores: np.ndarray, labels: np.ndarray) -> Positives:
    """The positive entries of ``labels`` and their ``scores``.

    Args:
        scores (np.ndarray): Validated scores (N, C) (:func:`check_scores`).
        labels (np.ndarray): Bool (N, C), True where an entry counts as
            positive.

    Returns:
        Positives: Their rows, columns and scores, in row-major order.
    """
    flat = np.flatnonzero(labels)
    rows, cols = np.divmod(flat, labels.shape[1])
    if scores.flags.c_contiguous:
        values = scores.ravel()[flat]
    else:
        values = scores[rows, cols]
    return Positives(rows, cols, values)


def _transpose_into(out: np.ndarray, src: np.ndarray, c0: int,
                    c1: int) -> None:
    """Copy ``src[:, c0:c1].T`` into ``out`` in row strips.

    A plain ``np.ascontiguousarray(src[:, c0:c1].T)`` walks the whole height
    of the matrix for every output row and is several times slower.
    """
    n = src.shape[0]
    for r0 in range(0, n, _ROW_BLOCK):
        r1 = min(n, r0 + _ROW_BLOCK)
        out[:, r0:r1] = src[r0:r1, c0:c1].T


def average_precision_kernel(scores: np.ndarray,
                             labels: np.ndarray,
                             mask: Optional[np.ndarray],
                             positives: Optional[Positives] = None
                             ) -> np.ndarray:
    """AP per column as a fraction, on validated inputs: the kernel of
    :func:`average_precision_per_class`, which checks its inputs first.

    With sklearn's tie semantics the AP of a label with P positives is
    ``1/P * sum_i tp(score >= s_i) / n(score >= s_i)`` over its positives
    ``i``. Both counts are binary searches: ``tp`` among the label's sorted
    positive scores, ``n`` in the label's sorted column. ``positives`` may
    pass the (unmasked) positive entries when the caller has them already.

    Args:
        scores (np.ndarray): Scores (N, C) from :func:`check_scores`.
        labels (np.ndarray): Bool ground truth (N, C).
        mask (np.ndarray, optional): Bool (N, C); False entries are left
            out of their label's ranking. None uses all.
        positives (Positives, optional): :func:`find_positives` of
            ``scores`` and ``labels & mask`` (``labels`` when unmasked)
            when the caller has them. Defaults to None (found here).

    Returns:
        np.ndarray: AP of each label as a fraction (not percent), (C,)
        float64; NaN for a label without a positive.
    """
    n, num_classes = scores.shape
    if positives is None:
        positives = find_positives(scores,
                                   labels if mask is None else labels & mask)
    # Group the positives' scores by label; a 16-bit key gets a radix sort.
    key = positives.cols
    if num_classes <= np.iinfo(np.uint16).max:
        key = key.astype(np.uint16)
    order = np.argsort(key, kind='stable')
    pos_scores = positives.scores[order]
    bounds = np.zeros(num_classes + 1, dtype=np.int64)
    np.cumsum(
        np.bincount(positives.cols, minlength=num_classes), out=bounds[1:])
    ap = np.full(num_classes, np.nan, dtype=np.float64)

    width = max(1, min(num_classes, _CHUNK_ELEMENTS // n))
    local = threading.local()  # one buffer per thread: no page faults

    def columns(c0: int, c1: int) -> None:
        if not hasattr(local, 'buffer'):
            local.buffer = np.empty((width, n), dtype=scores.dtype)
        col_scores = local.buffer[:c1 - c0]
        _transpose_into(col_scores, scores, c0, c1)
        if mask is not None:
            col_mask = np.empty((c1 - c0, n), dtype=np.bool_)
            _transpose_into(col_mask, mask, c0, c1)
            # -inf sorts below every finite score, so an excluded entry is
            # never counted in n(score >= s_i).
            np.copyto(col_scores, -np.inf, where=~col_mask)
        col_scores.sort(axis=1)
        for c in range(c0, c1):
            num_pos = bounds[c + 1] - bounds[c]
            if num_pos == 0:
                continue  # stays NaN: AP is undefined without a positive
            pos = np.sort(pos_scores[bounds[c]:bounds[c + 1]])
            num_ge = n - np.searchsorted(col_scores[c - c0], pos, 'left')
            tp_ge = num_pos - np.searchsorted(pos, pos, 'left')
            ap[c] = np.sum(tp_ge / num_ge) / num_pos

    _run_parallel(columns, _ranges(num_classes, width))
    return ap


def _hits_at_k(scores: np.ndarray,
               labels: np.ndarray,
               ks: List[int],
               positives: Optional[Positives] = None) -> List[int]:
    """Number of positives among each image's top-k labels, summed over
    images, for every k in ``ks`` (already clamped to C), on validated inputs.

    Ties at the k-th score are broken in favour of the lower label index.
    Only the positive entries are compared with each image's k-th score;
    images are revisited only where a positive is tied with it.
    """
    n, num_classes = scores.shape
    if positives is None:
        positives = find_positives(scores, labels)
    rows, cols, pos_scores = positives
    small = sorted({k for k in ks if k < num_classes})
    kth = {k: np.empty(n, scores.dtype) for k in small}  # k-th largest
    nxt = {k: np.empty(n, scores.dtype) for k in small}  # (k+1)-th largest
    above = {k: np.empty(n, np.int64) for k in small}  # number > k-th
    depth = max(small) + 1 if small else 0
    height = max(1, _PARTITION_ELEMENTS // num_classes)
    local = threading.local()  # one buffer per thread: no page faults

    def images(r0: int, r1: int) -> None:
        if not hasattr(local, 'buffer'):
            local.buffer = np.empty((height, num_classes), scores.dtype)
        block = local.buffer[:r1 - r0]
        np.copyto(block, scores[r0:r1])
        # One partition (a single pivot position is much faster than
        # several), then sort the few largest scores of each image.
        block.partition(num_classes - depth, axis=1)
        top = np.sort(block[:, num_classes - depth:], axis=1)
        for k in small:
            kth[k][r0:r1] = top[:, depth - k]
            nxt[k][r0:r1] = top[:, depth - k - 1]
            above[k][r0:r1] = np.count_nonzero(
                top[:, depth - k:] > top[:, depth - k, None], axis=1)

    if small:
        _run_parallel(images, _ranges(n, height))

    hits = []
    for k in ks:
        if k >= num_classes:
            hits.append(int(rows.size))
            continue
        thr = kth[k][rows]
        count = np.count_nonzero(pos_scores > thr)
        at_thr = np.flatnonzero(pos_scores == thr)
        # Where the (k+1)-th score is lower, every label scoring the k-th
        # score is in the top k; otherwise only the first `room` of them.
        crowded = nxt[k][rows[at_thr]] == thr[at_thr]
        count += np.count_nonzero(~crowded)
        at_thr = at_thr[crowded]
        if at_thr.size:
            tied_rows, which = np.unique(rows[at_thr], return_inverse=True)
            rank = np.empty(at_thr.size, dtype=np.int64)
            for b0, b1 in _ranges(tied_rows.size, _TIE_ROW_BLOCK):
                block = tied_rows[b0:b1]
                before = np.cumsum(
                    scores[block] == kth[k][block, None], axis=1)
                sel = (which >= b0) & (which < b1)
                rank[sel] = before[which[sel] - b0, cols[at_thr[sel]]] - 1
            room = k - above[k][rows[at_thr]]
            count += np.count_nonzero(rank < room)
        hits.append(int(count))
    return hits


def average_precision_per_class(scores: ArrayLike,
                                labels: ArrayLike,
                                mask: Optional[ArrayLike] = None
                                ) -> np.ndarray:
    """Average precision of every label, ranking images by their scores.

    The values equal sklearn's ``average_precision_score`` applied to each
    column, including its handling of tied scores: images with equal scores
    enter the ranking together, so AP does not depend on their order.

    Args:
        scores (np.ndarray | torch.Tensor): Scores of shape (N, C) for N
            images and C labels. Must be finite.
        labels (np.ndarray | torch.Tensor): Ground truth of shape (N, C) with
            values 0 or 1.
        mask (np.ndarray | torch.Tensor, optional): Bool array of shape
            (N, C); entries that are False (e.g. unknown labels) are left out
            of the ranking of their label. Defaults to None (use all).

    Returns:
        np.ndarray: AP of each label in percent, shape (C,), float64. NaN for
        a label without any (unmasked) positive.

    Examples:
        >>> import numpy as np
        >>> scores = np.array([[0.9, 0.1], [0.8, 0.7], [0.3, 0.2]])
        >>> labels = np.array([[1, 0], [0, 0], [1, 0]])
        >>> average_precision_per_class(scores, labels).round(2)
        array([83.33,   nan])
    """
    scores = check_scores(scores)
    labels = _check_binary(labels, scores.shape, 'labels')
    if mask is not None:
        mask = _check_binary(mask, scores.shape, 'mask')
    return average_precision_kernel(scores, labels, mask) * 100


def mean_average_precision(scores: ArrayLike,
                           labels: ArrayLike,
                           mask: Optional[ArrayLike] = None) -> float:
    """Mean of :func:`average_precision_per_class` over the labels that have
    at least one positive.

    Args:
        scores (np.ndarray | torch.Tensor): Scores of shape (N, C).
        labels (np.ndarray | torch.Tensor): Ground truth of shape (N, C) with
            values 0 or 1.
        mask (np.ndarray | torch.Tensor, optional): Bool array of shape
            (N, C); False entries are ignored. Defaults to None.

    Returns:
        float: mAP in percent; NaN if no label has a positive.

    Examples:
        >>> import numpy as np
        >>> scores = np.array([[0.9, 0.1], [0.8, 0.7], [0.3, 0.2]])
        >>> labels = np.array([[1, 0], [0, 1], [1, 0]])
        >>> round(mean_average_precision(scores, labels), 2)
        91.67
    """
    ap = average_precision_per_class(scores, labels, mask=mask)
    return quiet_nanmean(ap)


def quiet_nanmean(values: np.ndarray) -> float:
    """Mean of the non-NaN values; NaN (without ``np.nanmean``'s warning) if
    there are none, as for the mAP of a group of labels without positives.

    Args:
        values (np.ndarray): The values (per-label APs).

    Returns:
        float: Their mean, NaN values left out.
    """
    valid = values[~np.isnan(values)]
    return float(valid.mean()) if valid.size else float('nan')


def _prf(hits: int, num_images: int, k: int,
         num_pos: int) -> Tuple[float, float, float]:
    precision = 100.0 * hits / (num_images * k)
    if num_pos == 0:
        return precision, float('nan'), float('nan')
    recall = 100.0 * hits / num_pos
    total = precision + recall
    f1 = 2 * precision * recall / total if total > 0 else 0.0
    return precision, recall, f1


def precision_recall_f1_at_k(
    scores: ArrayLike, labels: ArrayLike, k: Union[int, Sequence[int]]
) -> Union[Tuple[float, float, float], List[Tuple[float, float, float]]]:
    """Precision, recall and F1 of each image's k highest-scoring labels.

    Counts are pooled over all images, as in the zero-shot multi-label
    literature: with ``hits`` the number of positives among the images' top-k
    labels, ``P = hits / (N * k)``, ``R = hits / (number of positives)`` and
    ``F1 = 2PR / (P + R)`` (0 when ``P + R == 0``).

    A ``k`` larger than C is clamped to C, i.e. every label is predicted.
    When the k-th score of an image is tied, the tied labels with the lower
    indices are taken (as a stable sort by descending score would).

    Args:
        scores (np.ndarray | torch.Tensor): Scores of shape (N, C).
        labels (np.ndarray | torch.Tensor): Ground truth of shape (N, C) with
            values 0 or 1.
        k (int | Sequence[int]): How many labels each image predicts. A
            sequence computes every value from a single top-k pass.

    Returns:
        tuple | list[tuple]: ``(P, R, F1)`` in percent for an int ``k``, or a
        list of them in the order of ``k``. R and F1 are NaN when there is no
        positive label at all.

    Examples:
        >>> import numpy as np
        >>> scores = np.array([[0.9, 0.1, 0.5], [0.2, 0.7, 0.4]])
        >>> labels = np.array([[1, 0, 1], [0, 0, 1]])
        >>> [round(x, 2) for x in precision_recall_f1_at_k(scores, labels, 1)]
        [50.0, 33.33, 40.0]
    """
    ks, single = check_k(k)
    scores = check_scores(scores)
    labels = _check_binary(labels, scores.shape, 'labels')
    results = precision_recall_f1_kernel(scores, labels, ks)
    return results[0] if single else results


def precision_recall_f1_kernel(scores: np.ndarray,
                               labels: np.ndarray,
                               ks: List[int],
                               positives: Optional[Positives] = None
                               ) -> List[Tuple[float, float, float]]:
    """(P, R, F1) in percent for every k, on validated inputs: the kernel of
    :func:`precision_recall_f1_at_k`, which checks its inputs first.

    Args:
        scores (np.ndarray): Scores (N, C) from :func:`check_scores`.
        labels (np.ndarray): Bool ground truth (N, C).
        ks (list[int]): Values of k from :func:`check_k`; one larger than C
            is clamped to C.
        positives (Positives, optional): :func:`find_positives` of
            ``scores`` and ``labels`` when the caller has them. Defaults to
            None (found here).

    Returns:
        list[tuple[float, float, float]]: ``(P, R, F1)`` for each k, in the
        order of ``ks`` (see :func:`precision_recall_f1_at_k`).
    """
    n, num_classes = scores.shape
    if positives is None:
        positives = find_positives(scores, labels)
    ks = [min(v, num_classes) for v in ks]
    hits = _hits_at_k(scores, labels, ks, positives)
    return [_prf(h, n, v, positives.rows.size) for h, v in zip(hits, ks)]
