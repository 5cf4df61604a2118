# Copyright (c) mmovl contributors. All rights reserved.
from typing import Optional

import torch
from mmpretrain.models.losses import AsymmetricLoss
from mmpretrain.models.losses.asymmetric_loss import asymmetric_loss
from mmpretrain.models.losses.utils import (convert_to_one_hot,
                                            weight_reduce_loss)
from mmpretrain.registry import MODELS


@MODELS.register_module()
class DetachedAsymmetricLoss(AsymmetricLoss):
    r"""mmpretrain's asymmetric loss (ASL) with the focusing weight taken as
    a constant, as ASL's official code with
    ``disable_torch_grad_focal_loss=True`` (CPRFL's training runs so).

    The loss of an element is
    :math:`-\log(p_t)\, w`, :math:`w = (1 - p_t)^{\gamma}` (with the
    probability shift ``clip`` on negatives); the value is mmpretrain's.
    Here the gradient flows through :math:`-\log(p_t)` only; mmpretrain's
    ``AsymmetricLoss`` also differentiates :math:`w`, which for a negative
    adds :math:`-\gamma_- (s - \mu)^{\gamma_- - 1} \log(1 - s + \mu)\,
    s (1 - s)` to its gradient (1.6-5x larger on typical negatives).

    Args:
        focus_grad (bool): Differentiate the focusing weight too, i.e.
            mmpretrain's ``AsymmetricLoss``. Defaults to False.
        **kwargs: mmpretrain's ``AsymmetricLoss`` arguments (``gamma_pos``,
            ``gamma_neg``, ``clip``, ``reduction``, ``loss_weight``,
            ``use_sigmoid``, ``eps``), with its defaults.

    Examples:
        >>> import torch
        >>> from mmovl.models.losses import DetachedAsymmetricLoss
        >>> loss = DetachedAsymmetricLoss(gamma_neg=4.0, clip=0.05)
        >>> pred = torch.tensor([[2.0, -1.0]], requires_grad=True)
        >>> loss(pred, torch.tensor([[1, 0]])).backward()
        >>> pred.grad.shape
        torch.Size([1, 2])
    """

    def __init__(self, focus_grad: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.focus_grad = focus_grad

    def forward(self,
                pred: torch.Tensor,
                target: torch.Tensor,
                weight: Optional[torch.Tensor] = None,
                avg_factor: Optional[int] = None,
                reduction_override: Optional[str] = None) -> torch.Tensor:
        if self.focus_grad:
            return super().forward(pred, target, weight, avg_factor,
                                   reduction_override)
        assert reduction_override in (None, 'none', 'mean', 'sum')
        reduction = reduction_override or self.reduction
        if target.dim() == 1 or (target.dim() == 2 and target.shape[1] == 1):
            target = convert_to_one_hot(target.view(-1, 1), pred.shape[-1])
        target = target.type_as(pred)
        # -log(p_t) per element: mmpretrain's loss without focusing
        log_pt = asymmetric_loss(
            pred, target, gamma_pos=0.0, gamma_neg=0.0, clip=self.clip,
            reduction='none', use_sigmoid=self.use_sigmoid, eps=self.eps)
        with torch.no_grad():
            prob = pred.sigmoid() if self.use_sigmoid else pred.softmax(-1)
            neg = 1 - prob
            if self.clip and self.clip > 0:
                neg = (neg + self.clip).clamp(max=1)
            pt = neg * (1 - target) + prob * target
            focus = (1 - pt).pow(self.gamma_pos * target + self.gamma_neg *
                                 (1 - target))
        if weight is not None:
            assert weight.dim() == 1
            weight = weight.float()
            if pred.dim() > 1:
                weight = weight.reshape(-1, 1)
        return self.loss_weight * weight_reduce_loss(
            log_pt * focus, weight, reduction, avg_factor)
