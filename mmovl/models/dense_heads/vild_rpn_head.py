# Copyright (c) mmovl contributors. All rights reserved.
from typing import Optional, Tuple

import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmdet.models.dense_heads import RPNHead
from mmdet.models.utils import multi_apply
from mmdet.registry import MODELS
from torch import Tensor


@MODELS.register_module()
class ViLDRPNHead(RPNHead):
    """mmdet's RPN head with a norm after each of its shared convs, one norm
    per pyramid level (the RPN head of ViLD's authors' detection code: 2
    convs shared across levels, each followed by a BN that is not shared).

    mmdet's ``RPNHead`` stacks ``num_convs`` convs without norms. Here conv
    ``i`` is followed, on level ``l``, by norm ``rpn_norms[l][i]`` and a
    ReLU; the classifier and box convs are mmdet's.

    Args:
        in_channels (int): Input channels.
        num_convs (int): Shared 3x3 convs. Defaults to 2.
        norm_cfg (dict, optional): Their norms; None gives mmdet's head
            (no norm). Defaults to ``dict(type='BN')``.
        num_levels (int): Pyramid levels (one set of norms each). Defaults to
            5.
        **kwargs: The other arguments of ``RPNHead``.

    Examples:
        >>> import torch
        >>> head = ViLDRPNHead(  # doctest: +SKIP
        ...     8, feat_channels=8, num_levels=2, anchor_generator=dict(
        ...         type='AnchorGenerator', scales=[8], ratios=[1.0],
        ...         strides=[4, 8]))
    """

    def __init__(self,
                 in_channels: int,
                 num_convs: int = 2,
                 norm_cfg: Optional[dict] = dict(type='BN'),
                 num_levels: int = 5,
                 **kwargs) -> None:
        if num_convs < 1:
            raise ValueError(f'num_convs must be >= 1, got {num_convs}.')
        self.norm_cfg = norm_cfg
        self.num_levels = num_levels
        super().__init__(in_channels, num_convs=num_convs, **kwargs)

    def _init_layers(self) -> None:
        self.rpn_convs = nn.ModuleList(
            nn.Conv2d(self.in_channels if i == 0 else self.feat_channels,
                      self.feat_channels, 3, padding=1)
            for i in range(self.num_convs))
        self.rpn_norms = None
        if self.norm_cfg is not None:
            self.rpn_norms = nn.ModuleList(
                nn.ModuleList(
                    build_norm_layer(self.norm_cfg, self.feat_channels)[1]
                    for _ in range(self.num_convs))
                for _ in range(self.num_levels))
        self.rpn_cls = nn.Conv2d(self.feat_channels,
                                 self.num_base_priors * self.cls_out_channels,
                                 1)
        self.rpn_reg = nn.Conv2d(
            self.feat_channels,
            self.num_base_priors * self.bbox_coder.encode_size, 1)

    def forward(self, x: Tuple[Tensor]) -> Tuple[list, list]:
        """Scores and deltas of every level (see ``AnchorHead.forward``)."""
        if self.rpn_norms is not None and len(x) != self.num_levels:
            raise ValueError(f'{type(self).__name__} has norms for '
                             f'{self.num_levels} levels, got {len(x)}.')
        return multi_apply(self.forward_single, x, list(range(len(x))))

    def forward_single(self, x: Tensor,
                       level: int = 0) -> Tuple[Tensor, Tensor]:
        """Scores and deltas of one level."""
        for i, conv in enumerate(self.rpn_convs):
            x = conv(x)
            if self.rpn_norms is not None:
                x = self.rpn_norms[level][i](x)
            x = F.relu(x)
        return self.rpn_cls(x), self.rpn_reg(x)
