# Copyright (c) mmovl contributors. All rights reserved.
from typing import Optional, Tuple

import torch
import torch.nn as nn
from mmpretrain.registry import MODELS

_REDUCTIONS = ('none', 'mean', 'sum')


def _check_inputs(cls_score: torch.Tensor,
                  label: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Return ``(is_pos, is_neg)`` masks of shape (B, C) after validation."""
    if not isinstance(cls_score, torch.Tensor) or cls_score.dim() != 2:
        shape = tuple(getattr(cls_score, 'shape', ()))
        raise ValueError(
            f'cls_score must be a 2-D tensor (B, C), got {shape}.')
    label = torch.as_tensor(label, device=cls_score.device)
    if label.shape != cls_score.shape:
        raise ValueError(
            'label must have the shape of cls_score '
            f'{tuple(cls_score.shape)}, got {tuple(label.shape)}.')
    if not ((label == 1) | (label == 0) | (label == -1)).all():
        raise ValueError('label must be multi-hot: 1 (positive), 0 '
                         '(negative) or -1 (ignored).')
    return label == 1, label == 0


def rank_loss(cls_score: torch.Tensor,
              label: torch.Tensor,
              margin: float = 1.0,
              eps: float = 1e-8) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per-image pairwise ranking loss, without reduction.

    See :class:`RankLoss` for the definition.

    Args:
        cls_score (torch.Tensor): Scores of shape (B, C).
        label (torch.Tensor): Multi-hot labels of shape (B, C): 1 positive,
            0 negative, -1 ignored.
        margin (float): The hinge margin. Defaults to 1.0.
        eps (float): Added to the number of violating pairs. Defaults to
            1e-8.

    Returns:
        tuple: The loss of each image, shape (B, ) (0 for an image without a
        positive or without a negative), and the boolean mask of the images
        that have a positive, shape (B, ); computed in float32 (or float64)
        whatever the scores' type: under mixed precision they are bfloat16 /
        float16, in which the sums over thousands of pairs and the pair
        counts (exact only up to 256 / 2048) would round.
    """
    is_pos, is_neg = _check_inputs(cls_score, label)
    cls_score = cls_score.to(
        torch.promote_types(cls_score.dtype, torch.float32))
    has_pos = is_pos.any(dim=1)
    # Only (positive, label) pairs are formed: the positives of each image
    # are moved to the front (their order does not matter) and
    # the batch is padded to its largest number of positives, so memory is
    # B x P_max x C rather than B x C x C.
    num_pos = int(is_pos.sum(dim=1).max()) if cls_score.numel() else 0
    if num_pos == 0:
        # Keep the graph connected so that backward works on any batch.
        return cls_score.sum(dim=1) * 0, has_pos
    order = torch.argsort(
        is_pos.to(torch.int8), dim=1, descending=True, stable=True)
    order = order[:, :num_pos]
    pos_score = cls_score.gather(1, order)  # (B, P)
    pos_valid = is_pos.gather(1, order)  # (B, P)
    pair_mask = pos_valid[:, :, None] & is_neg[:, None, :]  # (B, P, C)
    hinge = margin + cls_score[:, None, :] - pos_score[:, :, None]
    # where() rather than a product: an ignored score may be non-finite.
    hinge = torch.where(pair_mask, hinge.clamp(min=0), 0)
    violations = (hinge > 0).sum(dim=(1, 2)).to(hinge.dtype)
    return hinge.sum(dim=(1, 2)) / (violations + eps), has_pos


@MODELS.register_module()
class RankLoss(nn.Module):
    r"""The pairwise ranking loss of `MKT <https://arxiv.org/abs/2207.01887>`_
    (from BiAM).

    For an image with positive labels :math:`P`, negative labels :math:`Q`
    and scores :math:`s`:

    .. math::
        h = \frac{\sum_{p \in P} \sum_{n \in Q}
            \max(0, m + s_n - s_p)}{|\{(p, n): m + s_n - s_p > 0\}| + 10^{-8}}

    i.e. the mean hinge over the violating pairs only. An image without a
    positive or without a negative (or without a violation) has
    :math:`h = 0`.

    MKT's official code drops the images without a positive label from the
    batch before the loss, so by default (``drop_no_positive=True``) the
    ``'mean'`` reduction averages over the images that have a positive.
    Images with positives but no negatives stay in the mean with 0, as in
    the code. When no image has a positive the loss is 0, still connected
    to ``cls_score`` so that backward runs.

    Labels follow mmovl's multi-hot contract: 1 positive, 0 negative, -1
    ignored (MKT's code writes them +1 / -1 / 0).

    Memory: the pairs are formed as a (B, P_max, C) tensor, P_max being the
    largest number of positives of an image in the batch (a few for
    NUS-WIDE's 925 labels), so large vocabularies are affordable; the worst
    case (all labels positive) is B x C x C.

    Args:
        margin (float): The hinge margin :math:`m`. Defaults to 1.0.
        reduction (str): ``'none'``, ``'mean'`` or ``'sum'``.
            Defaults to ``'mean'``.
        loss_weight (float): Weight of the loss. Defaults to 1.0.
        drop_no_positive (bool): Whether the ``'mean'`` leaves out the images
            without a positive (the official code's behaviour). False
            averages over all images. Defaults to True.

    Examples:
        >>> import torch
        >>> from mmovl.models.losses import RankLoss
        >>> score = torch.tensor([[0.9, 0.5, 0.2], [0.1, 0.3, 0.4]])
        >>> label = torch.tensor([[1, 0, -1], [0, 0, 0]])  # image 2: no pos.
        >>> RankLoss()(score, label)  # (1 + 0.5 - 0.9) / 1, image 2 dropped
        tensor(0.6000)
    """

    def __init__(self,
                 margin: float = 1.0,
                 reduction: str = 'mean',
                 loss_weight: float = 1.0,
                 drop_no_positive: bool = True) -> None:
        super().__init__()
        if reduction not in _REDUCTIONS:
            raise ValueError(f'reduction must be one of {_REDUCTIONS}, got '
                             f'{reduction!r}.')
        self.margin = margin
        self.reduction = reduction
        self.loss_weight = loss_weight
        self.drop_no_positive = drop_no_positive

    def forward(self,
                cls_score: torch.Tensor,
                label: torch.Tensor,
                weight: Optional[torch.Tensor] = None,
                avg_factor: Optional[float] = None,
                reduction_override: Optional[str] = None) -> torch.Tensor:
        """Compute the loss.

        Args:
            cls_score (torch.Tensor): Scores of shape (B, C).
            label (torch.Tensor): Multi-hot labels of shape (B, C): 1
                positive, 0 negative, -1 ignored.
            weight (torch.Tensor, optional): Weight of each image, shape
                (B, ). Defaults to None.
            avg_factor (float, optional): Divide the sum by this instead of
                the number of (kept) images when reducing by mean.
                Defaults to None.
            reduction_override (str, optional): Overrides ``reduction``.
                Defaults to None.

        Returns:
            torch.Tensor: The loss, a scalar, or of shape (B, ) with
            ``'none'`` (0 for the images without a positive).
        """
        reduction = reduction_override or self.reduction
        if reduction not in _REDUCTIONS:
            raise ValueError(f'reduction must be one of {_REDUCTIONS}, got '
                             f'{reduction!r}.')
        loss, has_pos = rank_loss(cls_score, label, self.margin)
        if weight is not None:
            weight = torch.as_tensor(weight, device=loss.device)
            if weight.shape != loss.shape:
                raise ValueError('weight must have one value per image, shape '
                                 f'{tuple(loss.shape)}, got '
                                 f'{tuple(weight.shape)}.')
            loss = loss * weight
        if reduction == 'sum':
            if avg_factor is not None:
                raise ValueError('avg_factor cannot be used with '
                                 'reduction="sum".')
            loss = loss.sum()
        elif reduction == 'mean':
            if avg_factor is None:
                avg_factor = (
                    has_pos.sum().clamp(min=1)
                    if self.drop_no_positive else max(loss.numel(), 1))
            loss = loss.sum() / avg_factor
        return self.loss_weight * loss
