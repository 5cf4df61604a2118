# Copyright (c) mmovl contributors. All rights reserved.
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger
from mmpretrain.registry import METRICS

# The kernels behind mmovl.evaluation.functional, called directly so that the
# (N, C) score matrix is validated once rather than once per metric.
from ..functional import (Positives, average_precision_kernel, check_k,
                          check_scores, find_positives,
                          precision_recall_f1_kernel, quiet_nanmean, to_numpy)

#: Default long-tail groups (COCO-LT / VOC-LT, as CPRFL's ``metrics.py``):
#: head classes have at least HEAD_THR training images, tail classes fewer
#: than TAIL_THR (COCO-LT 22 / 33 / 25, VOC-LT 6 / 6 / 8).
HEAD_THR = 100
TAIL_THR = 20

#: How ZSL is scored, see :class:`ZSLMultiLabelMetric`.
ZSL_PROTOCOLS = ('unseen_vocabulary', 'sliced', 'sliced_unseen_positive')
#: What a label without a positive counts in a mean AP.
EMPTY_LABEL_AP = ('skip', 'zero')


def _split_target(target: np.ndarray):
    """Split a {1, 0, -1} target into positives and a mask of known entries
    (None when every entry is known)."""
    if target.dtype == np.bool_:
        return target, None
    if target.dtype.kind not in 'iuf':
        raise ValueError('target must be numeric or bool, got dtype '
                         f'{target.dtype}.')
    # Two reductions suffice for integers; floats also need a 0.5 check.
    low, high = target.min(), target.max()
    valid = low >= -1 and high <= 1
    if valid and target.dtype.kind == 'f':
        valid = bool(((target == 1) | (target == 0) | (target == -1)).all())
    if not valid:
        bad = ~((target == 1) | (target == 0) | (target == -1))
        i, j = np.argwhere(bad)[0]
        raise ValueError('target must contain only 1 (positive), 0 (negative) '
                         f'and -1 (unknown), found {target[i, j]} at image '
                         f'{i}, label {j}.')
    if low >= 0 and target.dtype.itemsize == 1 and target.dtype.kind in 'iu':
        return target.view(np.bool_), None  # 0/1 bytes are valid bools
    return target == 1, (target >= 0 if low < 0 else None)


@METRICS.register_module()
class ZSLMultiLabelMetric(BaseMetric):
    """Multi-label metrics for (generalised) zero-shot and long-tailed
    classification.

    Reports, under the prefix (``multi-label/...`` by default):

    - ``gzsl/mAP``, ``gzsl/P@k``, ``gzsl/R@k``, ``gzsl/F1@k``: all labels of
      the vocabulary, all images (GZSL).
    - ``zsl/mAP``, ``zsl/P@k``, ``zsl/R@k``, ``zsl/F1@k``: only when unseen
      classes are known; the unseen labels alone form the vocabulary (ZSL),
      as ``zsl_protocol`` says:

      - ``'unseen_vocabulary'`` (MKT's official code): the model scores the
        images with the unseen labels alone as its vocabulary, given as
        each sample's ``zsl_score`` (U, ) in the order of the unseen classes
        (``VocabularyHook`` asks models with ``set_zsl_vocabulary``, e.g.
        MKT, for them); over **all** test images. For MKT this differs from
        slicing the all-label scores: each stream is normalised across the
        vocabulary scored.
      - ``'sliced'``: the unseen columns of ``pred_score``, over all test
        images; the same numbers as ``'unseen_vocabulary'`` for a model
        whose score of a label does not depend on the other labels (CLIP's
        cosine similarities, a linear head).
      - ``'sliced_unseen_positive'`` (mmovl's protocol before the official
        code was followed): the unseen columns of ``pred_score``, over the
        images with at least one unseen positive only.
    - ``lt/mAP``, ``lt/head_mAP``, ``lt/medium_mAP``, ``lt/tail_mAP``: only
      when class frequencies are known; mAP over all labels and over the
      head (at least ``head_thr`` training images), medium (``tail_thr``
      to ``head_thr - 1``) and tail (fewer than ``tail_thr``) groups.

    mAP averages the AP of the labels with at least one positive
    (``empty_label_ap='skip'``, as sklearn and mmpretrain), or of all labels
    with AP 0 for a label without a positive (``'zero'``, MKT's
    ``compute_AP``), with sklearn's handling of tied scores; P/R/F1@k pool
    the top-k predictions of all images, ties at the k-th score going to the
    lower label index, and a
    k larger than the vocabulary (e.g. of few unseen labels) counts as its
    size (see :mod:`mmovl.evaluation.functional`). All values are
    percentages; a group without any positive gives NaN.

    Ground truth comes from each data sample's ``gt_score`` (multi-hot with 1
    positive, 0 negative and -1 unknown) or, failing that, its ``gt_label``
    (indices of the positives). Unknown entries are left out of AP; for
    P/R/F1@k they are simply not positives. Scores are kept as float32 and
    ground truth as int8, so the results take about the memory of one
    (N, C) float32 matrix (434 MB for NUS-WIDE's test set).

    The metric reads these keys of ``dataset_meta``:

    - ``classes``: the names of the vocabulary, in the order of the scores.
    - ``unseen_classes`` (optional): names of the unseen labels, a subset of
      ``classes``. The ``unseen_classes`` argument overrides it.
    - ``class_frequencies`` (optional): number of training images of each
      class, in the order of ``classes``.

    Args:
        k (int | Sequence[int]): Numbers of top-scoring labels for P/R/F1@k.
            Defaults to (3, 5).
        unseen_classes (Sequence[str], optional): Names of the unseen
            classes. Defaults to None (use ``dataset_meta``).
        head_thr (int): Head classes have at least this many training
            images. Defaults to 100.
        tail_thr (int): Tail classes have fewer training images than this.
            Defaults to 20.
        zsl_protocol (str): How ZSL is scored, see above. Defaults to
            ``'unseen_vocabulary'``.
        empty_label_ap (str): ``'skip'`` or ``'zero'``, see above. Defaults
            to ``'skip'``.
        collect_device (str): Device used to collect results from different
            ranks, 'cpu' or 'gpu'. Defaults to 'cpu'.
        prefix (str, optional): Prefix of the metric names. Defaults to None
            (use ``'multi-label'``).
        collect_dir (str, optional): Directory shared by the ranks to collect
            results through when ``collect_device`` is 'cpu'. Defaults to
            None.

    Examples:
        >>> import torch
        >>> from mmovl.evaluation import ZSLMultiLabelMetric
        >>> scores = torch.tensor([[0.9, 0.1, 0.6], [0.2, 0.8, 0.3]])
        >>> target = torch.tensor([[1, 0, 1], [0, 1, -1]])
        >>> results = ZSLMultiLabelMetric.calculate(
        ...     scores, target, k=1, unseen=[2])
        >>> results['gzsl/mAP'], round(results['gzsl/R@1'], 2)
        (100.0, 66.67)
        >>> sorted(key for key in results if key.startswith('zsl'))
        ['zsl/F1@1', 'zsl/P@1', 'zsl/R@1', 'zsl/mAP']
    """
    default_prefix: Optional[str] = 'multi-label'

    def __init__(self,
                 k: Union[int, Sequence[int]] = (3, 5),
                 unseen_classes: Optional[Sequence[str]] = None,
                 head_thr: int = HEAD_THR,
                 tail_thr: int = TAIL_THR,
                 zsl_protocol: str = 'unseen_vocabulary',
                 empty_label_ap: str = 'skip',
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None,
                 collect_dir: Optional[str] = None) -> None:
        super().__init__(
            collect_device=collect_device,
            prefix=prefix,
            collect_dir=collect_dir)
        self.k = tuple(check_k(k)[0])
        self.unseen_classes = (None if unseen_classes is None else
                               tuple(unseen_classes))
        if tail_thr > head_thr:
            raise ValueError(f'tail_thr ({tail_thr}) must not exceed '
                             f'head_thr ({head_thr}).')
        self.head_thr = head_thr
        self.tail_thr = tail_thr
        _check_choice('zsl_protocol', zsl_protocol, ZSL_PROTOCOLS)
        _check_choice('empty_label_ap', empty_label_ap, EMPTY_LABEL_AP)
        self.zsl_protocol = zsl_protocol
        self.empty_label_ap = empty_label_ap

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        """Store the scores (float32) and ground truth (int8) of a batch,
        and the ZSL scores (``zsl_score``) where a sample has them.

        Args:
            data_batch: A batch of data from the dataloader (unused).
            data_samples (Sequence[dict]): Outputs of the model, as dicts of
                ``DataSample`` fields.
        """
        for sample in data_samples:
            score = sample['pred_score'].detach().to('cpu', torch.float32)
            score = score.numpy().copy()
            num_classes = score.shape[-1]
            if 'gt_score' in sample:
                gt = sample['gt_score'].detach().cpu().numpy()
                if gt.shape != score.shape:
                    raise ValueError(
                        f'gt_score has shape {gt.shape} but pred_score has '
                        f'shape {score.shape}.')
                if not ((gt == 1) | (gt == 0) | (gt == -1)).all():
                    raise ValueError('gt_score must contain only 1, 0 and -1 '
                                     f'(unknown), got {np.unique(gt)}.')
                gt = gt.astype(np.int8)
            else:
                index = torch.as_tensor(sample['gt_label']).view(-1).long()
                if index.numel() and (index.min() < 0
                                      or index.max() >= num_classes):
                    raise ValueError(f'gt_label {index.tolist()} is out of '
                                     f'range for {num_classes} classes.')
                gt = np.zeros(num_classes, dtype=np.int8)
                gt[index.numpy()] = 1
            zsl = sample.get('zsl_score')
            if zsl is not None:
                zsl = zsl.detach().to('cpu', torch.float32).numpy().copy()
            self.results.append((score, gt, zsl))

    def compute_metrics(self, results: List[tuple]) -> Dict[str, float]:
        """Compute the metrics from the processed results of all samples.

        Args:
            results (list[tuple]): ``(pred_score, gt_score, zsl_score)`` of
                each sample (``zsl_score`` may be None).

        Returns:
            dict[str, float]: The computed metrics.
        """
        scores = np.stack([r[0] for r in results])
        target = np.stack([r[1] for r in results])
        num_classes = scores.shape[1]
        meta = self.dataset_meta or {}
        classes = meta.get('classes')
        if classes is not None and len(classes) != num_classes:
            raise ValueError(f'dataset_meta has {len(classes)} classes but '
                             f'the scores have {num_classes} columns.')

        unseen = None
        unseen_names = self.unseen_classes
        if unseen_names is None:
            unseen_names = meta.get('unseen_classes')
        if unseen_names is not None:
            if classes is None:
                raise ValueError('Unseen classes are given by name, so '
                                 "dataset_meta must provide 'classes'.")
            position = {name: i for i, name in enumerate(classes)}
            missing = [name for name in unseen_names if name not in position]
            if missing:
                raise ValueError(f'{len(missing)} unseen classes are not in '
                                 f'the vocabulary, e.g. {missing[:5]}.')
            # An empty unseen set (a closed-vocabulary data set) has no ZSL.
            unseen = [position[name] for name in unseen_names] or None

        frequencies = meta.get('class_frequencies')
        if frequencies is not None and len(frequencies) != num_classes:
            raise ValueError(f'class_frequencies has {len(frequencies)} '
                             f'entries but there are {num_classes} classes.')

        zsl_pred = None
        if unseen is not None and self.zsl_protocol == 'unseen_vocabulary':
            missing = sum(r[2] is None for r in results)
            if missing:
                raise ValueError(
                    f"zsl_protocol='unseen_vocabulary': {missing} of "
                    f'{len(results)} samples have no zsl_score, the scores '
                    'of the model with the unseen labels alone as its '
                    'vocabulary. VocabularyHook sets that vocabulary on '
                    'models with set_zsl_vocabulary() (e.g. MKT); for a '
                    'model whose score of a label does not depend on the '
                    "other labels, zsl_protocol='sliced' gives the same "
                    'numbers.')
            zsl_pred = np.stack([r[2] for r in results])
        return self.calculate(
            scores,
            target,
            k=self.k,
            unseen=unseen,
            class_frequencies=frequencies,
            head_thr=self.head_thr,
            tail_thr=self.tail_thr,
            zsl_pred=zsl_pred,
            zsl_protocol=self.zsl_protocol,
            empty_label_ap=self.empty_label_ap)

    @staticmethod
    def calculate(pred: Union[np.ndarray, torch.Tensor],
                  target: Union[np.ndarray, torch.Tensor],
                  k: Union[int, Sequence[int]] = (3, 5),
                  unseen: Optional[Sequence[int]] = None,
                  class_frequencies: Optional[Sequence[int]] = None,
                  head_thr: int = HEAD_THR,
                  tail_thr: int = TAIL_THR,
                  zsl_pred: Union[np.ndarray, torch.Tensor, None] = None,
                  zsl_protocol: str = 'sliced',
                  empty_label_ap: str = 'skip') -> Dict[str, float]:
        """Compute the GZSL, ZSL and long-tailed metrics without a runner.

        Args:
            pred (np.ndarray | torch.Tensor): Scores of shape (N, C).
            target (np.ndarray | torch.Tensor): Ground truth of shape (N, C),
                1 positive, 0 negative, -1 unknown.
            k (int | Sequence[int]): Values of k for P/R/F1@k.
                Defaults to (3, 5).
            unseen (Sequence[int], optional): Column indices of the unseen
                labels. Defaults to None (no ZSL metrics).
            class_frequencies (Sequence[int], optional): Training images per
                class. Defaults to None (no long-tailed metrics).
            head_thr (int): Head classes have at least this many training
                images. Defaults to 100.
            tail_thr (int): Tail classes have fewer training images than
                this. Defaults to 20.
            zsl_pred (np.ndarray | torch.Tensor, optional): (N, U) scores of
                the model with the unseen labels alone as its vocabulary, in
                the order of ``unseen``; needed by
                ``zsl_protocol='unseen_vocabulary'``. Defaults to None.
            zsl_protocol (str): See the class docstring. Defaults to
                ``'sliced'`` here (the scores at hand are all there is).
            empty_label_ap (str): ``'skip'`` or ``'zero'``, see the class
                docstring. Defaults to ``'skip'``.

        Returns:
            dict[str, float]: Metric values in percent, keyed as described
            in the class docstring (without the prefix).
        """
        ks = tuple(check_k(k)[0])
        _check_choice('zsl_protocol', zsl_protocol, ZSL_PROTOCOLS)
        _check_choice('empty_label_ap', empty_label_ap, EMPTY_LABEL_AP)
        scores = check_scores(pred)
        target = to_numpy(target)
        if target.shape != scores.shape:
            raise ValueError(f'target has shape {target.shape} but pred has '
                             f'shape {scores.shape}.')
        positives, known = _split_target(target)
        num_classes = scores.shape[1]
        if unseen is not None:
            unseen = np.asarray(unseen, dtype=np.int64).reshape(-1)
            out_of_range = (unseen < 0) | (unseen >= num_classes)
            if out_of_range.any() or np.unique(unseen).size != unseen.size:
                raise ValueError(f'unseen indices {unseen.tolist()} must be '
                                 f'distinct and lie in [0, {num_classes}).')
            if zsl_protocol == 'unseen_vocabulary':
                if zsl_pred is None:
                    raise ValueError("zsl_protocol='unseen_vocabulary' needs "
                                     'zsl_pred, the scores of the unseen '
                                     'labels alone.')
                zsl_pred = check_scores(zsl_pred)
                expected = (scores.shape[0], unseen.size)
                if zsl_pred.shape != expected:
                    raise ValueError(f'zsl_pred has shape {zsl_pred.shape}, '
                                     f'expected {expected} (images, unseen '
                                     'labels).')
            else:
                zsl_pred = None
        if class_frequencies is not None:
            freq = np.asarray(class_frequencies)
            if freq.shape != (num_classes, ):
                raise ValueError(f'class_frequencies has shape {freq.shape}, '
                                 f'expected ({num_classes}, ).')

        # Positives are known by definition, so AP (which masks unknown
        # entries) and P/R/F1 share one list of positive entries.
        entries = find_positives(scores, positives)
        with ThreadPoolExecutor(1) as background:
            # The GZSL AP is the largest job; the rest overlaps with it.
            gzsl_ap = background.submit(average_precision_kernel, scores,
                                        positives, known, entries)
            gzsl_prf = precision_recall_f1_kernel(scores, positives, list(ks),
                                                  entries)
            zsl = None
            if unseen is not None and zsl_protocol == \
                    'sliced_unseen_positive':
                zsl = _zsl_unseen_positive(scores, known, entries, unseen, ks)
            elif unseen is not None:
                zsl = _zsl_all_images(
                    scores[:, unseen] if zsl_pred is None else zsl_pred,
                    positives[:, unseen],
                    None if known is None else known[:, unseen], ks)
            ap = gzsl_ap.result() * 100
        if empty_label_ap == 'zero':
            ap = np.nan_to_num(ap, nan=0.0)
            if zsl is not None:
                zsl = (np.nan_to_num(zsl[0], nan=0.0), zsl[1])
        results = _report('gzsl', ap, gzsl_prf, ks)
        if zsl is not None:
            results.update(_report('zsl', *zsl, ks))

        if class_frequencies is not None:
            results['lt/mAP'] = quiet_nanmean(ap)
            results['lt/head_mAP'] = quiet_nanmean(ap[freq >= head_thr])
            results['lt/medium_mAP'] = quiet_nanmean(
                ap[(freq >= tail_thr) & (freq < head_thr)])
            results['lt/tail_mAP'] = quiet_nanmean(ap[freq < tail_thr])
        return results


def _check_choice(name: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ValueError(f'{name} must be one of {choices}, got {value!r}.')


def _zsl_all_images(scores: np.ndarray, positives: np.ndarray,
                    known: Optional[np.ndarray], ks: Sequence[int]):
    """AP (percent) and P/R/F1@k of the (N, U) unseen-label scores over
    all images."""
    scores = np.ascontiguousarray(scores)
    positives = np.ascontiguousarray(positives)
    entries = find_positives(scores, positives)
    if known is not None:
        known = np.ascontiguousarray(known)
    ap = average_precision_kernel(scores, positives, known, entries)
    prf = precision_recall_f1_kernel(scores, positives, list(ks), entries)
    return ap * 100, prf


def _zsl_unseen_positive(scores: np.ndarray, known: Optional[np.ndarray],
                         entries: Positives, unseen: np.ndarray,
                         ks: Sequence[int]):
    """AP (percent) and P/R/F1@k with the unseen labels as the vocabulary,
    over the images that have an unseen positive."""
    # Position of each label in the ZSL vocabulary, -1 for seen labels.
    new_col = np.full(scores.shape[1], -1, dtype=np.int64)
    new_col[unseen] = np.arange(unseen.size)
    cols = new_col[entries.cols]
    keep = cols >= 0
    rows, cols = entries.rows[keep], cols[keep]
    images = np.unique(rows)
    if images.size == 0:
        MMLogger.get_current_instance().warning(
            'No image has a positive unseen label; the ZSL metrics are NaN.')
        return np.full(unseen.size, np.nan), [(np.nan, ) * 3] * len(ks)
    rows = np.searchsorted(images, rows)
    zsl_scores = scores[np.ix_(images, unseen)]
    zsl_pos = np.zeros(zsl_scores.shape, dtype=np.bool_)
    zsl_pos[rows, cols] = True
    zsl_known = None if known is None else known[np.ix_(images, unseen)]
    zsl_entries = Positives(rows, cols, entries.scores[keep])
    ap = average_precision_kernel(zsl_scores, zsl_pos, zsl_known, zsl_entries)
    prf = precision_recall_f1_kernel(zsl_scores, zsl_pos, list(ks),
                                     zsl_entries)
    return ap * 100, prf


def _report(name: str, ap: np.ndarray, prf: list,
            ks: Sequence[int]) -> Dict[str, float]:
    """Name the mAP and P/R/F1@k of one evaluation setting."""
    results = {f'{name}/mAP': quiet_nanmean(ap)}
    for k, (precision, recall, f1) in zip(ks, prf):
        results[f'{name}/P@{k}'] = float(precision)
        results[f'{name}/R@{k}'] = float(recall)
        results[f'{name}/F1@{k}'] = float(f1)
    return results
