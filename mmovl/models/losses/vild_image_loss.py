# Copyright (c) mmovl contributors. All rights reserved.
import torch
import torch.nn as nn
from mmdet.registry import MODELS


def vild_image_loss(region_embeds: torch.Tensor,
                    clip_embeds: torch.Tensor) -> torch.Tensor:
    r"""ViLD's image-distillation loss, unweighted.

    :math:`\frac{1}{M}\sum_i \lVert v_i - r_i \rVert_1`: the L1 norm of each
    pair's difference (summed over the D dimensions, not averaged), averaged
    over the M pairs.

    Args:
        region_embeds (torch.Tensor): (M, D) region embeddings of the
            detector.
        clip_embeds (torch.Tensor): (M, D) CLIP image embeddings of the same
            boxes.

    Returns:
        torch.Tensor: A scalar; 0 (still attached to ``region_embeds``'s
        graph) when M is 0.
    """
    if region_embeds.dim() != 2 or region_embeds.shape != clip_embeds.shape:
        raise ValueError(
            'region_embeds and clip_embeds must both be (M, D), got '
            f'{tuple(region_embeds.shape)} and {tuple(clip_embeds.shape)}.')
    if region_embeds.shape[0] == 0:
        # Keep the graph connected so that backward works on any batch.
        return region_embeds.sum() * 0
    diff = region_embeds - clip_embeds.to(region_embeds)
    return diff.abs().sum(dim=1).mean()


@MODELS.register_module()
class ViLDImageLoss(nn.Module):
    r"""The ViLD-image loss of `ViLD <https://arxiv.org/abs/2104.13921>`_.

    Distils CLIP's image embeddings of M precomputed proposals into the
    detector's region embeddings of the same boxes:

    .. math::
        L_{image} = \frac{w}{M} \sum_{i=1}^{M} \lVert v_i - r_i \rVert_1

    Both sides are expected L2-normalised (the authors' code normalises
    both). The weight :math:`w` is 0.5 in the paper.

    Args:
        loss_weight (float): The weight :math:`w`. Defaults to 0.5.

    Examples:
        >>> import torch
        >>> loss = ViLDImageLoss(loss_weight=0.5)
        >>> r = torch.tensor([[1., 0.], [0., 1.]])
        >>> v = torch.tensor([[0., 1.], [0., 1.]])
        >>> loss(r, v)  # (|1| + |-1| + 0 + 0) / 2 pairs * 0.5
        tensor(0.5000)
    """

    def __init__(self, loss_weight: float = 0.5) -> None:
        super().__init__()
        self.loss_weight = loss_weight

    def forward(self, region_embeds: torch.Tensor,
                clip_embeds: torch.Tensor) -> torch.Tensor:
        """Compute the weighted loss.

        Args:
            region_embeds (torch.Tensor): (M, D) region embeddings.
            clip_embeds (torch.Tensor): (M, D) CLIP embeddings (targets, no
                gradient is needed).

        Returns:
            torch.Tensor: The scalar loss.
        """
        return self.loss_weight * vild_image_loss(region_embeds, clip_embeds)
