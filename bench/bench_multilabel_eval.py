# Copyright (c) mmovl contributors. All rights reserved.
"""Benchmark mmovl's multi-label evaluator against common implementations.

A random problem the size of NUS-WIDE's test set (107,859 images x 1,006
labels, about 2 % positives, 81 unseen labels) is evaluated by

- mmovl: the full ZSL + GZSL report of ``ZSLMultiLabelMetric.calculate``
  (mAP and P/R/F1@3,5 for both settings), and its GZSL AP and P/R/F1 alone;
- mmpretrain ``AveragePrecision.calculate`` (AP) and
  ``MultiLabelMetric.calculate(topk=k, average='micro')``, which is the
  pooled P/R/F1@k;
- sklearn ``average_precision_score``, one call per label;
- torchmetrics ``MultilabelAveragePrecision``, if installed.

Half of the labels have scores rounded to 3 decimals, so ties are common
there; the other half have distinct scores. sklearn and torchmetrics rank
tied scores together, as mmovl does; mmpretrain ranks them in sort order
(and ``torch.topk`` breaks ties at the k-th score arbitrarily), so it is
also compared where there are no ties.

Usage::

    python bench/bench_multilabel_eval.py           # full size, minutes
    python bench/bench_multilabel_eval.py --small   # a few seconds
"""
import argparse
import time

import numpy as np
import torch

from mmovl.evaluation import (ZSLMultiLabelMetric, average_precision_per_class,
                              precision_recall_f1_at_k)


def make_problem(num_images, num_classes, num_unseen, seed):
    rng = np.random.default_rng(seed)
    # Label frequencies vary over an order of magnitude, 2 % on average.
    rate = rng.uniform(0.002, 0.038, num_classes).astype(np.float32)
    labels = (rng.random((num_images, num_classes), dtype=np.float32)
              < rate).astype(np.int8)
    # Scores stay in [0, 1] (torchmetrics would apply a sigmoid otherwise);
    # positives are skewed upwards so that AP is well above chance.
    scores = rng.random((num_images, num_classes), dtype=np.float32)
    np.power(scores, 0.25, out=scores, where=labels.astype(bool))
    # Even labels: scores rounded to 3 decimals, so ties are everywhere.
    # Odd labels: distinct scores (ranks), the case where every AP
    # implementation should agree.
    tied = np.arange(num_classes) % 2 == 0
    scores[:, tied] = np.round(scores[:, tied], 3)
    order = np.argsort(scores[:, ~tied].T, axis=1)
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(num_images), axis=1)
    scores[:, ~tied] = ((ranks + 0.5) / num_images).T
    del order, ranks
    unseen = np.sort(rng.choice(num_classes, num_unseen, replace=False))
    return scores, labels, unseen, ~tied


def timed(func, repeat=1):
    """Run ``func`` ``repeat`` times; return its last result and the best
    time."""
    best = float('inf')
    for _ in range(repeat):
        start = time.perf_counter()
        result = func()
        best = min(best, time.perf_counter() - start)
    return result, best


def sklearn_ap(scores, labels):
    from sklearn.metrics import average_precision_score

    from mmovl.utils.progress import track
    out = np.empty(scores.shape[1])
    for c in track(range(scores.shape[1]), desc='sklearn, per label'):
        out[c] = 100 * average_precision_score(labels[:, c], scores[:, c])
    return out


def torchmetrics_ap(scores, labels):
    from torchmetrics.classification import MultilabelAveragePrecision
    metric = MultilabelAveragePrecision(
        num_labels=scores.shape[1], average=None, thresholds=None)
    metric.update(torch.from_numpy(scores), torch.from_numpy(labels).long())
    return metric.compute().numpy() * 100


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--small', action='store_true', help='5,000 x 300 for a quick run')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--repeat', type=int, default=3, help='best of N runs for mmovl')
    parser.add_argument(
        '--threads',
        type=int,
        help='torch.set_num_threads for every implementation; mmovl uses as '
        'many worker threads. Default: torch\'s default. On a busy machine '
        'torch\'s threads spin-wait and slow the torch-based peers down a lot '
        '(--threads 1 avoids that).')
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    shape = (5000, 300, 25) if args.small else (107859, 1006, 81)

    scores, labels, unseen, tie_free = make_problem(*shape, args.seed)
    print(f'problem: {shape[0]} images x {shape[1]} labels, '
          f'{labels.mean():.2%} positives, {len(unseen)} unseen labels, '
          f'{(~tie_free).sum()} labels with rounded (tied) scores; '
          f'torch threads: {torch.get_num_threads()}')
    ks = (3, 5)

    report, t_report = timed(
        lambda: ZSLMultiLabelMetric.calculate(
            scores, labels, k=ks, unseen=unseen), args.repeat)
    ours_ap, t_ap = timed(lambda: average_precision_per_class(scores, labels),
                          args.repeat)
    ours_prf, t_prf = timed(
        lambda: precision_recall_f1_at_k(scores, labels, ks), args.repeat)
    print(f'mmovl full ZSL + GZSL report: {t_report:.3f} s (best of '
          f'{args.repeat}; GZSL AP alone {t_ap:.3f} s, GZSL P/R/F1@3,5 '
          f'alone {t_prf:.3f} s)')
    for key, value in report.items():
        print(f'  {key:12s} {value:8.4f}')

    # (peer, seconds, our time for the same quantity, max abs diff, note)
    rows = []
    try:
        from mmpretrain.evaluation import AveragePrecision, MultiLabelMetric
    except ImportError as err:
        print(f'mmpretrain skipped: {err}')
    else:
        print('running mmpretrain ...', flush=True)
        t_scores = torch.from_numpy(scores)
        t_labels = torch.from_numpy(labels).long()
        peer_ap, t_peer = timed(lambda: AveragePrecision.calculate(
            t_scores, t_labels, average=None).numpy())
        diff = np.abs(peer_ap - ours_ap)
        rows.append(('mmpretrain AveragePrecision', t_peer, t_ap, diff.max(),
                     f'tie-free labels: {diff[tie_free].max():.1e}'))

        def peer_prf(s, y):
            return np.array([[
                float(v) for v in MultiLabelMetric.calculate(
                    s, y, topk=k, average='micro')[:3]
            ] for k in ks])

        prf, t_peer = timed(lambda: peer_prf(t_scores, t_labels))
        # torch.topk breaks ties at the k-th score arbitrarily, mmovl by
        # label index, so agreement is also checked on the images whose
        # k-th and (k+1)-th scores differ for every k.
        top = torch.topk(t_scores, max(ks) + 1, dim=1).values
        free = np.ones(len(scores), dtype=bool)
        for k in ks:
            free &= (top[:, k - 1] != top[:, k]).numpy()
        free_diff = np.abs(
            peer_prf(t_scores[free], t_labels[free]) -
            np.array(precision_recall_f1_at_k(scores[free], labels[free], ks)))
        rows.append(('mmpretrain MultiLabelMetric P/R/F1@3,5', t_peer, t_prf,
                     np.abs(prf - np.array(ours_prf)).max(),
                     f'images without a tie at the k-th score: '
                     f'{free_diff.max():.1e}'))

    try:
        import sklearn  # noqa: F401
    except ImportError:
        print('sklearn skipped: scikit-learn is not installed')
    else:
        peer_ap, t_peer = timed(lambda: sklearn_ap(scores, labels))
        rows.append(('sklearn average_precision_score', t_peer, t_ap,
                     np.abs(peer_ap - ours_ap).max(), ''))

    try:
        import torchmetrics  # noqa: F401
    except ImportError:
        print('torchmetrics skipped: not installed '
              '(pip install torchmetrics to include it)')
    else:
        print('running torchmetrics ...', flush=True)
        peer_ap, t_peer = timed(lambda: torchmetrics_ap(scores, labels))
        rows.append(('torchmetrics MultilabelAveragePrecision', t_peer, t_ap,
                     np.abs(peer_ap - ours_ap).max(), ''))

    print(f'\n{"peer":40s} {"time/s":>7s} {"vs same":>8s} {"vs report":>9s} '
          f'{"max|diff|":>9s}')
    for name, seconds, ours, diff, note in rows:
        print(f'{name:40s} {seconds:7.3f} {seconds / ours:7.1f}x '
              f'{seconds / t_report:8.1f}x {diff:9.1e}  {note}')
    print('vs same: peer time / mmovl time for the same quantity (AP, or '
          'P/R/F1); vs report: peer time / mmovl full ZSL + GZSL report. '
          'max|diff|: largest difference of per-label AP (or of P/R/F1), '
          'in percentage points.')


if __name__ == '__main__':
    main()
