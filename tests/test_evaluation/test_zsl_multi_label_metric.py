# Copyright (c) mmovl contributors. All rights reserved.
import json
import math
import os
import socket

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from mmpretrain.registry import METRICS
from mmpretrain.structures import DataSample
from sklearn.metrics import average_precision_score

from mmovl.evaluation import ZSLMultiLabelMetric

CLASSES = ('cat', 'dog', 'sky', 'car', 'tree', 'boat')
UNSEEN = ('sky', 'boat')  # columns 2 and 5
# head x3 (>= 100), medium (20-99), tail x2 (< 20): the borders 100 / 20
FREQUENCIES = [500, 101, 100, 20, 19, 3]


def make_problem(n=23, seed=0):
    """Tied scores and a target with unknown (-1) entries."""
    rng = np.random.default_rng(seed)
    scores = (rng.integers(0, 4, (n, len(CLASSES))) / 4).astype(np.float32)
    target = (rng.random((n, len(CLASSES))) < 0.35).astype(np.int64)
    target[rng.random(target.shape) < 0.15] = -1
    target[0, 2] = 1  # at least one unseen positive
    return scores, target


def zsl_scores_of(scores, seed=9):
    """Scores of the unseen labels alone: not a slice of ``scores``, as a
    model that normalises across its vocabulary gives."""
    rng = np.random.default_rng(seed)
    return rng.random((len(scores), len(UNSEEN))).astype(np.float32)


def to_samples(scores, target, zsl=None):
    samples = []
    for i, (s, t) in enumerate(zip(scores, target)):
        sample = DataSample().set_pred_score(torch.from_numpy(s)).set_gt_score(
            torch.from_numpy(t))
        if zsl is not None:
            sample.set_field(torch.from_numpy(zsl[i]), 'zsl_score')
        samples.append(sample.to_dict())
    return samples


def expected_metrics(scores, target, ks, unseen_cols=None, freq=None,
                     zsl='all', zsl_scores=None, empty='skip'):
    """The reported metrics, from sklearn and explicit loops. ZSL over all
    images (``zsl='all'``) or those with an unseen positive
    (``'unseen_positive'``), with ``zsl_scores`` or the unseen columns;
    a label without a positive is skipped or counts 0 (``empty``)."""

    def mean_ap(s, t, cols):
        aps = []
        for c in cols:
            known = t[:, c] >= 0
            y = t[known, c]
            if y.sum() > 0:
                aps.append(100 * average_precision_score(y, s[known, c]))
            elif empty == 'zero':
                aps.append(0.0)
        return float(np.mean(aps)) if aps else math.nan

    def prf(s, t, k):
        k = min(k, s.shape[1])
        hits = sum(
            int(
                sum(row_t[c] == 1 for c in sorted(
                    range(len(row_s)), key=lambda c: -row_s[c])[:k]))
            for row_s, row_t in zip(s, t))
        p = 100 * hits / (len(s) * k)
        if (t == 1).sum() == 0:
            return p, math.nan, math.nan
        r = 100 * hits / (t == 1).sum()
        return p, r, (0.0 if hits == 0 else 2 * p * r / (p + r))

    def report(name, s, t):
        out = {f'{name}/mAP': mean_ap(s, t, range(s.shape[1]))}
        for k in ks:
            p, r, f1 = prf(s, t, k)
            out.update({
                f'{name}/P@{k}': p,
                f'{name}/R@{k}': r,
                f'{name}/F1@{k}': f1
            })
        return out

    out = report('gzsl', scores, target)
    if unseen_cols is not None:
        rows = list(range(len(target)))
        if zsl == 'unseen_positive':
            rows = [
                i for i in rows
                if any(target[i, c] == 1 for c in unseen_cols)
            ]
        s = scores[:, unseen_cols] if zsl_scores is None else zsl_scores
        out.update(report('zsl', s[rows], target[np.ix_(rows, unseen_cols)]))
    if freq is not None:
        groups = dict(
            mAP=range(len(freq)),
            head_mAP=[c for c, f in enumerate(freq) if f >= 100],
            medium_mAP=[c for c, f in enumerate(freq) if 20 <= f <= 99],
            tail_mAP=[c for c, f in enumerate(freq) if f < 20])
        for key, cols in groups.items():
            out[f'lt/{key}'] = mean_ap(scores, target, cols)
    return out


def assert_metrics_equal(actual, expected, prefix='multi-label/'):
    assert set(actual) == {prefix + key for key in expected}
    for key, value in expected.items():
        assert actual[prefix + key] == pytest.approx(
            value, abs=1e-6, nan_ok=True), key


def test_calculate_without_runner():
    scores, target = make_problem()
    results = ZSLMultiLabelMetric.calculate(
        torch.from_numpy(scores), torch.from_numpy(target), k=(1, 3))
    assert_metrics_equal(
        results, expected_metrics(scores, target, (1, 3)), prefix='')
    results = ZSLMultiLabelMetric.calculate(
        scores, target, k=2, unseen=[2, 5], class_frequencies=FREQUENCIES)
    assert_metrics_equal(
        results,
        expected_metrics(scores, target, (2, ), [2, 5], FREQUENCIES),
        prefix='')


def test_metric_from_dataset_meta():
    scores, target = make_problem(seed=1)
    metric = METRICS.build(dict(type='ZSLMultiLabelMetric', k=(1, 3, 10)))
    metric.dataset_meta = dict(
        classes=CLASSES, unseen_classes=UNSEEN, class_frequencies=FREQUENCIES)
    zsl = zsl_scores_of(scores)
    samples = to_samples(scores, target, zsl)
    for start in range(0, len(samples), 4):
        metric.process(None, samples[start:start + 4])
    # Stored compactly: float32 scores, int8 ground truth.
    assert all(s.dtype == np.float32 and t.dtype == np.int8
               and z.dtype == np.float32 for s, t, z in metric.results)
    results = metric.evaluate(len(samples))
    # MKT's protocol: the zsl_score of every image, unseen positive or not
    assert_metrics_equal(
        results,
        expected_metrics(scores, target, (1, 3, 10), [2, 5], FREQUENCIES,
                         zsl_scores=zsl))
    # k = 10 > C predicts everything, hence the full recall.
    assert results['multi-label/gzsl/R@10'] == pytest.approx(100.0)


def test_unseen_argument_overrides_meta_and_gt_label():
    rng = np.random.default_rng(2)
    scores = rng.random((9, len(CLASSES))).astype(np.float32)
    labels = [[0, 1], [2], [5, 3], [1], [2, 4], [0], [], [3], [5]]
    target = np.zeros(scores.shape, dtype=np.int64)
    for row, index in zip(target, labels):
        row[index] = 1
    metric = ZSLMultiLabelMetric(
        k=3, unseen_classes=['car', 'cat'], prefix='ovl',
        zsl_protocol='sliced_unseen_positive')
    metric.dataset_meta = dict(classes=CLASSES, unseen_classes=UNSEEN)
    metric.process(None, [
        DataSample().set_pred_score(torch.from_numpy(s)).set_gt_label(
            torch.tensor(index, dtype=torch.long)).to_dict()
        for s, index in zip(scores, labels)
    ])
    assert_metrics_equal(
        metric.evaluate(len(labels)),
        expected_metrics(scores, target, (3, ), [3, 0],
                         zsl='unseen_positive'),
        prefix='ovl/')


def test_invalid_configurations():
    scores, target = make_problem(n=5)
    samples = to_samples(scores, target)

    def evaluate(**meta):
        metric = ZSLMultiLabelMetric()
        metric.dataset_meta = meta
        metric.process(None, samples)
        return metric.evaluate(len(samples))

    with pytest.raises(ValueError, match='not in the vocabulary'):
        evaluate(classes=CLASSES, unseen_classes=('sky', 'moon'))
    with pytest.raises(ValueError, match="must provide 'classes'"):
        evaluate(unseen_classes=UNSEEN)
    with pytest.raises(ValueError, match='class_frequencies has 2'):
        evaluate(classes=CLASSES, class_frequencies=[1, 2])
    with pytest.raises(ValueError, match='6 columns'):
        evaluate(classes=CLASSES[:4])
    with pytest.raises(ValueError, match='only 1, 0 and -1'):
        ZSLMultiLabelMetric().process(None, [
            DataSample().set_pred_score(torch.rand(3)).set_gt_score(
                torch.tensor([0.0, 0.5, 1.0])).to_dict()
        ])
    with pytest.raises(ValueError, match='only 1 .* and -1'):
        ZSLMultiLabelMetric.calculate(scores, target * 2)
    with pytest.raises(ValueError, match='must be distinct and lie in'):
        ZSLMultiLabelMetric.calculate(scores, target, unseen=[6])
    with pytest.raises(ValueError, match='must be distinct and lie in'):
        ZSLMultiLabelMetric.calculate(scores, target, unseen=[2, 2])
    with pytest.raises(ValueError, match='tail_thr'):
        ZSLMultiLabelMetric(head_thr=10, tail_thr=20)
    with pytest.raises(ValueError, match='k must be'):
        ZSLMultiLabelMetric(k=0)
    with pytest.raises(ValueError, match='3 of 5 samples have no zsl_score'):
        metric = ZSLMultiLabelMetric()
        metric.dataset_meta = dict(classes=CLASSES, unseen_classes=UNSEEN)
        zsl = zsl_scores_of(scores)
        metric.process(None, to_samples(scores[:2], target[:2], zsl[:2]))
        metric.process(None, to_samples(scores[2:], target[2:]))
        metric.evaluate(5)
    with pytest.raises(ValueError, match='expected \\(5, 2\\)'):
        ZSLMultiLabelMetric.calculate(
            scores, target, unseen=[2, 5], zsl_pred=scores[:, :3],
            zsl_protocol='unseen_vocabulary')
    with pytest.raises(ValueError, match='zsl_protocol must be one of'):
        ZSLMultiLabelMetric(zsl_protocol='mkt')
    with pytest.raises(ValueError, match='empty_label_ap must be one of'):
        ZSLMultiLabelMetric(empty_label_ap='nan')


def test_long_tail_groups_at_the_borders():
    """CPRFL's metrics.py: head >= 100 training images, medium 20-99, tail
    < 20. Each class's AP is made 100 or 50 by hand, so each group's mean
    says which classes it holds."""
    # 2 images; a class is ranked right (AP 100) or wrong (AP 50)
    target = np.array([[1, 1, 1, 1, 1, 1], [0, 0, 0, 0, 0, 0]])
    right, wrong = [0.9, 0.1], [0.1, 0.9]
    # AP 100 for 101 and 99 images, 50 for 100, 20, 19 and 3
    cols = [right, wrong, right, wrong, wrong, wrong]
    scores = np.array(cols, dtype=np.float32).T
    freq = [101, 100, 99, 20, 19, 3]
    results = ZSLMultiLabelMetric.calculate(
        scores, target, k=1, class_frequencies=freq)
    assert results['lt/head_mAP'] == pytest.approx(75.0)  # 101 and 100
    assert results['lt/medium_mAP'] == pytest.approx(75.0)  # 99 and 20
    assert results['lt/tail_mAP'] == pytest.approx(50.0)  # 19 and 3


def test_empty_unseen_set_reports_no_zsl():
    scores, target = make_problem(seed=4)
    metric = ZSLMultiLabelMetric(k=(3, ))
    metric.dataset_meta = dict(classes=CLASSES, unseen_classes=())
    metric.process(None, to_samples(scores, target))
    results = metric.evaluate(len(scores))
    assert not any('/zsl/' in k for k in results)
    assert results['multi-label/gzsl/mAP'] == pytest.approx(
        expected_metrics(scores, target, (3, ), None,
                         None)['gzsl/mAP'])


def test_no_unseen_positive_gives_nan():
    scores, target = make_problem(n=6)
    target[:, 5] = np.minimum(target[:, 5], 0)  # no 'boat' positive
    results = ZSLMultiLabelMetric.calculate(
        scores, target, k=1, unseen=[5],
        zsl_protocol='sliced_unseen_positive')
    zsl = [value for key, value in results.items() if key.startswith('zsl/')]
    assert len(zsl) == 4 and np.isnan(zsl).all()
    # over all images: 6 predictions, no hit; recall undefined
    results = ZSLMultiLabelMetric.calculate(scores, target, k=1, unseen=[5])
    assert results['zsl/P@1'] == 0.0
    assert np.isnan([results['zsl/mAP'], results['zsl/R@1']]).all()
    assert results['gzsl/mAP'] == pytest.approx(
        expected_metrics(scores, target, (1, ))['gzsl/mAP'])
    results = ZSLMultiLabelMetric.calculate(
        scores, target, k=1, unseen=[5], empty_label_ap='zero')
    assert results['zsl/mAP'] == 0.0  # MKT's compute_AP


def _free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def _dist_worker(rank, world_size, port, scores, target, out_dir):
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    dist.init_process_group('gloo', rank=rank, world_size=world_size)
    try:
        metric = ZSLMultiLabelMetric(
            k=(1, 3), collect_dir=os.path.join(out_dir, 'collect'))
        metric.dataset_meta = dict(
            classes=CLASSES,
            unseen_classes=UNSEEN,
            class_frequencies=FREQUENCIES)
        # Shard like mmengine's DefaultSampler: pad to a multiple of the
        # world size by repeating the first samples, then interleave.
        size = len(scores)
        total = -(-size // world_size) * world_size
        indices = (list(range(size)) * 2)[:total][rank::world_size]
        samples = to_samples(scores[indices], target[indices],
                             zsl_scores_of(scores)[indices])
        for start in range(0, len(samples), 3):
            metric.process(None, samples[start:start + 3])
        results = metric.evaluate(size)
        with open(os.path.join(out_dir, f'rank{rank}.json'), 'w') as f:
            json.dump({k: float(v) for k, v in results.items()}, f)
    finally:
        dist.destroy_process_group()


def test_distributed_equals_single_process(tmp_path):
    scores, target = make_problem(n=13, seed=3)  # odd: one padded sample
    mp.spawn(
        _dist_worker,
        args=(2, _free_port(), scores, target, str(tmp_path)),
        nprocs=2)

    metric = ZSLMultiLabelMetric(k=(1, 3))
    metric.dataset_meta = dict(
        classes=CLASSES, unseen_classes=UNSEEN, class_frequencies=FREQUENCIES)
    zsl = zsl_scores_of(scores)
    metric.process(None, to_samples(scores, target, zsl))
    single = metric.evaluate(len(scores))
    assert_metrics_equal(
        single, expected_metrics(scores, target, (1, 3), [2, 5], FREQUENCIES,
                                 zsl_scores=zsl))
    for rank in range(2):
        with open(tmp_path / f'rank{rank}.json') as f:
            distributed = json.load(f)
        assert distributed.keys() == single.keys()
        for key, value in single.items():
            assert distributed[key] == pytest.approx(value, nan_ok=True), key


@pytest.mark.parametrize('protocol', ['sliced', 'sliced_unseen_positive'])
def test_sliced_protocols(protocol):
    scores, target = make_problem(seed=5)
    metric = ZSLMultiLabelMetric(k=(2, 3), zsl_protocol=protocol)
    metric.dataset_meta = dict(classes=CLASSES, unseen_classes=UNSEEN)
    metric.process(None, to_samples(scores, target, zsl_scores_of(scores)))
    zsl = 'all' if protocol == 'sliced' else 'unseen_positive'
    assert_metrics_equal(
        metric.evaluate(len(scores)),
        expected_metrics(scores, target, (2, 3), [2, 5], zsl=zsl))


def test_empty_label_ap_zero_keeps_the_label_in_the_mean():
    """MKT's compute_AP: a label without a positive has AP 0 and counts."""
    scores, target = make_problem(seed=6)
    target[:, 1] = np.minimum(target[:, 1], 0)  # 'dog': no positive
    target[:, 5] = np.minimum(target[:, 5], 0)  # 'boat' (unseen): none
    zsl = zsl_scores_of(scores)
    for empty in ('skip', 'zero'):
        metric = ZSLMultiLabelMetric(k=3, empty_label_ap=empty)
        metric.dataset_meta = dict(classes=CLASSES, unseen_classes=UNSEEN,
                                   class_frequencies=FREQUENCIES)
        metric.process(None, to_samples(scores, target, zsl))
        assert_metrics_equal(
            metric.evaluate(len(scores)),
            expected_metrics(scores, target, (3, ), [2, 5], FREQUENCIES,
                             zsl_scores=zsl, empty=empty))
    # by hand: 6 labels, two without a positive
    ap = ZSLMultiLabelMetric.calculate(scores, target, k=1)['gzsl/mAP']
    ap0 = ZSLMultiLabelMetric.calculate(scores, target, k=1,
                                        empty_label_ap='zero')['gzsl/mAP']
    assert ap0 == pytest.approx(ap * 4 / 6)
