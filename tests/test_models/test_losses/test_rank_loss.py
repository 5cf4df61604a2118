# Copyright (c) mmovl contributors. All rights reserved.
import pytest
import torch
from mmpretrain.registry import MODELS

import mmovl  # noqa: F401
import mmovl.models.losses  # noqa: F401
from mmovl.models.losses import RankLoss


def brute_force_per_image(scores, labels, margin=1.0):
    """The rank loss of each image, pair by pair, in plain Python."""
    losses = []
    for row, label in zip(scores.tolist(), labels.tolist()):
        pos = [s for s, y in zip(row, label) if y == 1]
        neg = [s for s, y in zip(row, label) if y == 0]
        hinges = [max(0.0, margin + n - p) for p in pos for n in neg]
        violations = sum(h > 0 for h in hinges)
        losses.append(sum(hinges) / (violations + 1e-8))
    return torch.tensor(losses, dtype=torch.float64)


def make_batch(batch=6, classes=9, seed=0):
    gen = torch.Generator().manual_seed(seed)
    scores = torch.randn(batch, classes, generator=gen, dtype=torch.float64)
    # About 30% positives, 15% ignored, the rest negatives.
    u = torch.rand(batch, classes, generator=gen)
    labels = (u < 0.3).long() - ((u >= 0.3) & (u < 0.45)).long()
    labels[0] = 0  # an image without a positive
    labels[0, 2] = -1
    labels[1] = torch.tensor([1] * classes)  # positives only
    labels[2, :3] = 1  # several positives, so P_max pads the others
    return scores, labels


def test_matches_brute_force():
    scores, labels = make_batch()
    expected = brute_force_per_image(scores, labels)
    assert expected[0] == 0 and expected[1] == 0
    per_image = RankLoss(reduction='none')(scores, labels)
    torch.testing.assert_close(per_image, expected)
    # Mean over the images that have a positive: all but image 0.
    torch.testing.assert_close(RankLoss()(scores, labels), expected.sum() / 5)
    torch.testing.assert_close(
        RankLoss(drop_no_positive=False)(scores, labels), expected.mean())
    torch.testing.assert_close(
        RankLoss(reduction='sum', loss_weight=0.5)(scores, labels),
        0.5 * expected.sum())
    for margin in (0.2, 3.0):
        torch.testing.assert_close(
            RankLoss(margin=margin, reduction='none')(scores, labels),
            brute_force_per_image(scores, labels, margin))
    # Larger random batches, labels as floats.
    for seed in range(1, 4):
        scores, labels = make_batch(batch=5, classes=30, seed=seed)
        torch.testing.assert_close(
            RankLoss(reduction='none')(scores, labels.double()),
            brute_force_per_image(scores, labels))


def test_hand_checked():
    score = torch.tensor([[0.9, 0.5, 0.2, 3.0, -0.4]])
    label = torch.tensor([[1, 0, 0, -1, 1]])
    # Pairs (p, n): (0.9, 0.5) -> 0.6, (0.9, 0.2) -> 0.3, (-0.4, 0.5) -> 1.9,
    # (-0.4, 0.2) -> 1.6; the ignored 3.0 takes no part. 4 violations.
    expected = torch.tensor((0.6 + 0.3 + 1.9 + 1.6) / 4)
    torch.testing.assert_close(RankLoss()(score, label), expected)
    # A pair with a zero hinge is no violation: only (0.9, 1.0) counts.
    score = torch.tensor([[2.0, 0.9, 1.0, -0.5]])
    label = torch.tensor([[1, 1, 0, 0]])
    # (2.0, 1.0) -> exactly 0, (2.0, -0.5) -> 0, (0.9, 1.0) -> 1.1,
    # (0.9, -0.5) -> 0.
    torch.testing.assert_close(RankLoss()(score, label), torch.tensor(1.1))


def test_images_without_positive():
    scores, labels = make_batch()
    scores.requires_grad_()
    loss = RankLoss()(scores, labels)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(scores.grad).all()
    # Image 0 has no positive: no gradient and no share of the mean.
    assert (scores.grad[0] == 0).all()
    assert (scores.grad[1] == 0).all()  # no negative either
    # No image with a positive at all: 0, and backward still works.
    scores = scores.detach().requires_grad_()
    for reduction in ('mean', 'sum', 'none'):
        loss = RankLoss(reduction=reduction)(scores, torch.zeros(6, 9))
        assert (loss
                == 0).all() and loss.shape == (() if reduction != 'none' else
                                               (6, ))
        loss.sum().backward()
        assert (scores.grad == 0).all()
    # An ignored score may even be infinite.
    score = torch.tensor([[1.0, 0.5, float('inf')]], requires_grad=True)
    loss = RankLoss()(score, torch.tensor([[1, 0, -1]]))
    loss.backward()
    torch.testing.assert_close(loss, torch.tensor(0.5))
    assert torch.isfinite(score.grad).all()


def test_gradient_matches_brute_force():
    scores, labels = make_batch(seed=5)

    def brute_force(s):
        total = 0
        for i in range(s.shape[0]):
            pos = [j for j in range(s.shape[1]) if labels[i, j] == 1]
            neg = [j for j in range(s.shape[1]) if labels[i, j] == 0]
            hinges = [(1 + s[i, n] - s[i, p]).clamp(min=0) for p in pos
                      for n in neg]
            count = sum(int(h > 0) for h in hinges)
            total = total + sum(hinges, s.new_zeros(())) / (count + 1e-8)
        return total / int((labels == 1).any(dim=1).sum())

    leaf = scores.clone().requires_grad_()
    RankLoss()(leaf, labels).backward()
    expected = scores.clone().requires_grad_()
    brute_force(expected).backward()
    torch.testing.assert_close(leaf.grad, expected.grad)


def test_weight_and_avg_factor():
    scores, labels = make_batch()
    expected = brute_force_per_image(scores, labels)
    weight = torch.linspace(0.5, 2.0, 6, dtype=torch.float64)
    torch.testing.assert_close(RankLoss()(scores, labels, weight=weight),
                               (weight * expected).sum() / 5)
    torch.testing.assert_close(
        RankLoss()(scores, labels, weight=weight, reduction_override='none'),
        weight * expected)
    torch.testing.assert_close(RankLoss()(scores, labels, avg_factor=2.0),
                               expected.sum() / 2)
    torch.testing.assert_close(
        RankLoss()(scores, labels, reduction_override='sum'), expected.sum())
    with pytest.raises(ValueError, match='avg_factor'):
        RankLoss(reduction='sum')(scores, labels, avg_factor=2.0)
    with pytest.raises(ValueError, match='one value per image'):
        RankLoss()(scores, labels, weight=torch.ones(6, 9))


def test_invalid_inputs():
    scores, labels = make_batch()
    loss = RankLoss()
    with pytest.raises(ValueError, match=r'2-D tensor \(B, C\)'):
        loss(scores[0], labels[0])
    with pytest.raises(ValueError, match='shape of cls_score'):
        loss(scores, labels[:, :4])
    with pytest.raises(ValueError, match='shape of cls_score'):
        loss(scores, labels[:, 0])  # indices are not multi-hot
    with pytest.raises(ValueError, match='multi-hot'):
        loss(scores, labels + 1)
    with pytest.raises(ValueError, match='reduction'):
        RankLoss(reduction='avg')
    with pytest.raises(ValueError, match='reduction'):
        loss(scores, labels, reduction_override='max')


def test_build_from_registry():
    loss = MODELS.build(dict(type='RankLoss', margin=0.5, loss_weight=2.0))
    assert isinstance(loss, RankLoss)
    assert loss.margin == 0.5 and loss.loss_weight == 2.0
    assert loss.reduction == 'mean' and loss.drop_no_positive
