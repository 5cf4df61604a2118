# Copyright (c) mmovl contributors. All rights reserved.
import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score

from mmovl.evaluation import (average_precision_per_class,
                              mean_average_precision, precision_recall_f1_at_k)
from mmovl.evaluation.functional import multi_label


def sklearn_ap(scores, labels, mask=None):
    """AP per column from sklearn, in percent, NaN without a positive."""
    out = []
    for c in range(scores.shape[1]):
        keep = slice(None) if mask is None else mask[:, c]
        y, s = labels[keep, c], scores[keep, c]
        out.append(100 * average_precision_score(y, s) if y.sum() else np.nan)
    return np.array(out)


def brute_force_prf(scores, labels, k):
    """P/R/F1@k with an explicit loop; ties go to the lower label index."""
    k = min(k, scores.shape[1])
    hits = 0
    for row_scores, row_labels in zip(scores, labels):
        order = sorted(range(len(row_scores)), key=lambda c: -row_scores[c])
        hits += sum(int(row_labels[c]) for c in order[:k])
    precision = 100 * hits / (len(scores) * k)
    recall = 100 * hits / labels.sum()
    f1 = 0.0 if hits == 0 else 2 * precision * recall / (precision + recall)
    return precision, recall, f1


def tied_problem(n, c, seed, levels=5, rate=0.3):
    """Scores with only ``levels`` distinct values, so ties are everywhere."""
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, levels, (n, c)).astype(np.float32) / levels
    labels = (rng.random((n, c)) < rate).astype(np.int64)
    return scores, labels


def test_average_precision_hand_checked():
    scores = np.array([[0.9, 0.8], [0.8, 0.8], [0.5, 0.5], [0.3, 0.3]])
    labels = np.array([[1, 1], [0, 0], [1, 0], [0, 1]])
    # Column 0: positives at ranks 1 and 3 -> (1/1 + 2/3) / 2.
    # Column 1: the positive tied at 0.8 with a negative counts 1/2, then
    # the positive at 0.3 sees 2 of 4 -> (1/2 + 2/4) / 2.
    ap = average_precision_per_class(scores, labels)
    np.testing.assert_allclose(ap, [100 * 5 / 6, 50.0])
    assert mean_average_precision(scores, labels) == pytest.approx(
        (100 * 5 / 6 + 50) / 2)


@pytest.mark.parametrize('seed', range(4))
def test_average_precision_matches_sklearn_with_ties(seed):
    scores, labels = tied_problem(60, 7, seed)
    labels[:, 3] = 0  # a label without positives
    ap = average_precision_per_class(scores, labels)
    expected = sklearn_ap(scores, labels)
    assert np.isnan(ap[3])
    np.testing.assert_allclose(ap, expected, atol=1e-6)
    assert mean_average_precision(scores, labels) == pytest.approx(
        np.nanmean(expected), abs=1e-6)


def test_average_precision_many_chunks_and_threads(monkeypatch):
    # Tiny chunks and row strips exercise the blocked, threaded path that
    # only full-size inputs take by default.
    monkeypatch.setattr(multi_label, '_CHUNK_ELEMENTS', 50)
    monkeypatch.setattr(multi_label, '_ROW_BLOCK', 7)
    monkeypatch.setattr(multi_label, '_num_workers', lambda: 2)
    rng = np.random.default_rng(0)
    scores = rng.random((41, 13)).round(1)
    labels = rng.random((41, 13)) < 0.2
    mask = rng.random((41, 13)) < 0.8
    np.testing.assert_allclose(
        average_precision_per_class(scores, labels, mask=mask),
        sklearn_ap(scores, labels, mask),
        atol=1e-6)


def test_average_precision_with_mask():
    scores, labels = tied_problem(50, 6, seed=10)
    rng = np.random.default_rng(1)
    mask = rng.random(scores.shape) < 0.7
    mask[:, 2] = labels[:, 2] == 0  # every positive of label 2 is unknown
    ap = average_precision_per_class(scores, labels, mask=mask)
    np.testing.assert_allclose(ap, sklearn_ap(scores, labels, mask), atol=1e-6)
    assert np.isnan(ap[2])
    # An all-True mask changes nothing.
    np.testing.assert_allclose(
        average_precision_per_class(scores, labels, mask=np.ones_like(mask)),
        average_precision_per_class(scores, labels))


def test_average_precision_edge_cases():
    # A single image: a positive label is ranked first, hence AP 100.
    ap = average_precision_per_class(
        np.array([[0.2, 0.7, 0.1]]), np.array([[1, 0, 1]]))
    np.testing.assert_array_equal(ap, [100.0, np.nan, 100.0])
    # All scores equal: AP is the positive rate.
    ap = average_precision_per_class(
        np.zeros((4, 1)), np.array([[1], [0], [0], [1]]))
    np.testing.assert_allclose(ap, [50.0])
    # No positive anywhere.
    assert np.isnan(mean_average_precision(np.ones((3, 2)), np.zeros((3, 2))))


def test_accepts_tensors_and_dtypes():
    scores, labels = tied_problem(30, 5, seed=3)
    expected = sklearn_ap(scores, labels)
    for s, y in [(torch.from_numpy(scores), torch.from_numpy(labels)),
                 (torch.from_numpy(scores).half(), torch.from_numpy(labels)),
                 (scores.astype(np.float64), labels.astype(bool)),
                 (scores, labels.astype(np.float32)),
                 ((scores * 5).astype(np.int32), labels.astype(np.int8))]:
        np.testing.assert_allclose(
            average_precision_per_class(s, y), expected, atol=1e-6)
    assert precision_recall_f1_at_k(
        torch.from_numpy(scores), torch.from_numpy(labels),
        2) == pytest.approx(brute_force_prf(scores, labels, 2))


def test_accepts_non_contiguous_arrays():
    scores, labels = tied_problem(30, 10, seed=4)
    views = [(np.asfortranarray(scores), np.asfortranarray(labels)),
             (scores[::2, 1::2], labels[::2, 1::2])]
    for s, y in views:
        dense_s, dense_y = np.ascontiguousarray(s), np.ascontiguousarray(y)
        np.testing.assert_allclose(
            average_precision_per_class(s, y),
            sklearn_ap(dense_s, dense_y),
            atol=1e-6)
        assert precision_recall_f1_at_k(s, y, 3) == pytest.approx(
            brute_force_prf(dense_s, dense_y, 3))


def test_precision_recall_f1_hand_checked():
    scores = np.array([[0.9, 0.1, 0.5], [0.2, 0.7, 0.4]])
    labels = np.array([[1, 0, 1], [0, 0, 1]])
    # Top-1: label 0 for image 0 (right), label 1 for image 1 (wrong).
    precision, recall, f1 = precision_recall_f1_at_k(scores, labels, 1)
    assert precision == pytest.approx(50.0)
    assert recall == pytest.approx(100 / 3)
    assert f1 == pytest.approx(2 * 50 * (100 / 3) / (50 + 100 / 3))
    # Top-2 finds all three positives among 4 predictions.
    assert precision_recall_f1_at_k(scores, labels, 2) == pytest.approx(
        (75.0, 100.0, 2 * 75 * 100 / 175))


@pytest.mark.parametrize('seed', range(3))
@pytest.mark.parametrize('k', [1, 2, 3, 6])
def test_precision_recall_f1_matches_brute_force(seed, k, monkeypatch):
    # Small blocks exercise the threaded, blocked path of full-size inputs.
    monkeypatch.setattr(multi_label, '_TIE_ROW_BLOCK', 3)
    monkeypatch.setattr(multi_label, '_PARTITION_ELEMENTS', 30)
    monkeypatch.setattr(multi_label, '_num_workers', lambda: 2)
    scores, labels = tied_problem(40, 6, seed, levels=3)
    assert precision_recall_f1_at_k(scores, labels, k) == pytest.approx(
        brute_force_prf(scores, labels, k))


def test_precision_recall_f1_sequence_and_clamping():
    scores, labels = tied_problem(25, 4, seed=7)
    many = precision_recall_f1_at_k(scores, labels, [1, 3, 10])
    assert many == [
        pytest.approx(precision_recall_f1_at_k(scores, labels, k))
        for k in (1, 3, 10)
    ]
    # k beyond C predicts every label: recall is 100 %.
    assert many[2] == pytest.approx(brute_force_prf(scores, labels, 4))
    assert many[2][1] == pytest.approx(100.0)


def test_precision_recall_f1_degenerate():
    scores = np.array([[0.9, 0.1], [0.8, 0.2]])
    # No hit at all: F1 is 0 rather than 0 / 0.
    assert precision_recall_f1_at_k(scores, np.array([[0, 1], [0, 1]]),
                                    1) == (0.0, 0.0, 0.0)
    # No positive at all: recall is undefined.
    precision, recall, f1 = precision_recall_f1_at_k(scores, np.zeros((2, 2)),
                                                     1)
    assert precision == 0.0 and np.isnan(recall) and np.isnan(f1)


@pytest.mark.parametrize('func', [
    average_precision_per_class, mean_average_precision,
    lambda s, y: precision_recall_f1_at_k(s, y, 3)
])
def test_invalid_inputs(func):
    scores = np.random.default_rng(0).random((4, 3))
    labels = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0]])
    with pytest.raises(ValueError, match='2-D'):
        func(scores[0], labels[0])
    with pytest.raises(ValueError, match='same shape'):
        func(scores, labels[:3])
    with pytest.raises(ValueError, match='NaN'):
        func(np.where(labels == 1, np.nan, scores), labels)
    with pytest.raises(ValueError, match='infinite'):
        func(np.where(labels == 1, -np.inf, scores), labels)
    with pytest.raises(ValueError, match=r'only 0 and 1, found 2'):
        func(scores, labels * 2)
    with pytest.raises(ValueError, match=r'only 0 and 1, found 0.5'):
        func(scores, labels * 0.5)
    with pytest.raises(ValueError, match=r'only 0 and 1, found -1'):
        func(scores, -labels)
    with pytest.raises(ValueError, match='at least one image'):
        func(np.zeros((0, 3)), np.zeros((0, 3)))


def test_invalid_mask_and_k():
    scores, labels = tied_problem(5, 3, seed=0)
    with pytest.raises(ValueError, match='mask must have the same shape'):
        average_precision_per_class(scores, labels, mask=np.ones((5, 2)))
    for k in (0, -1, 2.5, []):
        with pytest.raises(ValueError, match='k must be'):
            precision_recall_f1_at_k(scores, labels, k)


def test_public_kernels_on_validated_inputs(recwarn):
    """The kernels the metrics call once per score matrix give what the
    checking functions give, with or without shared positive entries."""
    from mmovl.evaluation.functional import (Positives,
                                             average_precision_kernel,
                                             check_k, check_scores,
                                             find_positives,
                                             precision_recall_f1_kernel,
                                             quiet_nanmean, to_numpy)
    scores, labels = tied_problem(30, 7, seed=3)
    mask = np.random.default_rng(4).random(scores.shape) > 0.2
    checked = check_scores(torch.from_numpy(scores).half())
    assert checked.dtype == np.float32 and checked.shape == (30, 7)
    truth = labels.astype(bool)
    positives = find_positives(checked, truth & mask)
    assert isinstance(positives, Positives)
    np.testing.assert_array_equal(positives.scores,
                                  checked[positives.rows, positives.cols])
    ap = average_precision_kernel(checked, truth, mask, positives)
    np.testing.assert_allclose(
        ap * 100, average_precision_per_class(checked, labels, mask))
    np.testing.assert_allclose(
        average_precision_kernel(checked, truth, mask), ap)
    ks, single = check_k(3)
    assert (ks, single) == ([3], True)
    assert check_k((1, 9)) == ([1, 9], False)
    prf = precision_recall_f1_kernel(checked, truth, [1, 9],
                                     find_positives(checked, truth))
    assert prf == precision_recall_f1_at_k(checked, labels, [1, 9])
    assert np.isnan(quiet_nanmean(np.array([np.nan, np.nan])))
    assert quiet_nanmean(np.array([1.0, np.nan, 3.0])) == 2.0
    assert not [w for w in recwarn if 'Mean of empty' in str(w.message)]
    assert to_numpy(torch.ones(2, dtype=torch.bfloat16)).dtype == np.float32
