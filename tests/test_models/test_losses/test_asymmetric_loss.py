# Copyright (c) mmovl contributors. All rights reserved.
"""DetachedAsymmetricLoss: ASL's value, its gradient with the focusing
weight as a constant (ASL's official ``disable_torch_grad_focal_loss``,
CPRFL's training), checked against gradients derived by hand."""
import pytest
import torch
from mmpretrain.models import AsymmetricLoss
from mmpretrain.registry import MODELS

import mmovl  # noqa: F401

GAMMA_NEG, CLIP = 4.0, 0.05


def _problem(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(5, 7, generator=g, dtype=torch.float64) * 3
    y = (torch.rand(5, 7, generator=g) > 0.6).double()
    return x, y


def _hand_grad(x, y, focus_grad):
    """d loss / dx of the mean over elements, gamma+ = 0, by hand.

    Positive: -log s, gradient -(1 - s). Negative with shift mu:
    q = min(1 - s + mu, 1), loss -log(q) w, w = (1 - q)^g = max(s - mu,
    0)^g. With w constant: s (1 - s) / q * w. Differentiating w as well
    adds -log(q) g max(s - mu, 0)^(g-1) s (1 - s).
    """
    s = torch.sigmoid(x)
    shifted = (s - CLIP).clamp(min=0)
    q = 1 - shifted
    ds = s * (1 - s)
    neg = ds / q * shifted**GAMMA_NEG
    if focus_grad:
        neg = neg - torch.log(q) * GAMMA_NEG * shifted**(GAMMA_NEG - 1) * ds
    grad = y * -(1 - s) + (1 - y) * neg
    return grad / x.numel()


@pytest.mark.parametrize('focus_grad', [False, True])
def test_gradient_is_the_hand_gradient(focus_grad):
    x, y = _problem()
    loss = MODELS.build(dict(type='DetachedAsymmetricLoss', gamma_pos=0.0,
                             gamma_neg=GAMMA_NEG, clip=CLIP,
                             focus_grad=focus_grad))
    x.requires_grad_(True)
    value = loss(x, y)
    grad, = torch.autograd.grad(value, x)
    torch.testing.assert_close(grad, _hand_grad(x.detach(), y, focus_grad))
    # the value is mmpretrain's either way
    torch.testing.assert_close(
        value, AsymmetricLoss(gamma_pos=0.0, gamma_neg=GAMMA_NEG,
                              clip=CLIP)(x, y))


def test_focus_grad_is_mmpretrains_gradient():
    x, y = _problem(1)
    x.requires_grad_(True)
    ours = MODELS.build(dict(type='DetachedAsymmetricLoss', focus_grad=True))
    theirs = AsymmetricLoss()
    g1, = torch.autograd.grad(ours(x, y), x)
    g2, = torch.autograd.grad(theirs(x, y), x)
    torch.testing.assert_close(g1, g2)
    # detached, the negatives above the shift get smaller gradients
    g0, = torch.autograd.grad(MODELS.build(
        dict(type='DetachedAsymmetricLoss'))(x, y), x)
    active = (y == 0) & (torch.sigmoid(x.detach()) > CLIP + 0.01)
    assert (g2[active] > g0[active]).all()
    torch.testing.assert_close(g0[y == 1], g2[y == 1])  # gamma+ = 0


def test_weights_reduction_and_index_targets():
    x, y = _problem(2)
    loss = MODELS.build(dict(type='DetachedAsymmetricLoss'))
    ref = AsymmetricLoss()
    w = torch.rand(5, dtype=torch.float64)
    for kwargs in (dict(weight=w), dict(reduction_override='sum'),
                   dict(avg_factor=3)):
        torch.testing.assert_close(loss(x, y, **kwargs), ref(x, y, **kwargs))
    labels = torch.tensor([0, 3, 6, 1, 2])  # single-label indices
    torch.testing.assert_close(loss(x, labels), ref(x, labels))


def _authors_asl(x, y, gamma_neg=4, gamma_pos=0, clip=0.05, eps=1e-8):
    """CPRFL's src/loss_functions/asl.py ``AsymmetricLossOptimized`` with
    ``disable_torch_grad_focal_loss=True``, as its code reads: the weight
    is computed with gradients switched off."""
    xs_pos = torch.sigmoid(x)
    xs_neg = (1.0 - xs_pos).add(clip).clamp(max=1)
    loss = y * torch.log(xs_pos.clamp(min=eps))
    loss = loss + (1 - y) * torch.log(xs_neg.clamp(min=eps))
    with torch.no_grad():
        w = torch.pow(1 - xs_pos * y - xs_neg * (1 - y),
                      gamma_pos * y + gamma_neg * (1 - y))
    return -(loss * w).mean()


def test_same_value_and_gradient_as_the_authors_loss():
    x, y = _problem(3)
    x.requires_grad_(True)
    ours = MODELS.build(dict(type='DetachedAsymmetricLoss'))(x, y)
    theirs = _authors_asl(x, y)
    torch.testing.assert_close(ours, theirs)
    torch.testing.assert_close(
        torch.autograd.grad(ours, x)[0], torch.autograd.grad(theirs, x)[0])
