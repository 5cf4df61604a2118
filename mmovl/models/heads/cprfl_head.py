# Copyright (c) mmovl contributors. All rights reserved.
import warnings
from typing import Dict, List, Optional

import torch
import torch.nn as nn
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from .cprfl_vsi import CPRFLVSIBlock
from .utils import check_label_embeds, multi_hot_targets


def _is_cls_patches(feats) -> bool:
    """Whether ``feats`` is a ViT's ``(cls_token, patch_tokens)`` pair."""
    return (isinstance(feats, (tuple, list)) and len(feats) == 2
            and all(isinstance(f, torch.Tensor) for f in feats)
            and feats[0].dim() == 2 and feats[1].dim() == 3)


@MODELS.register_module()
class CPRFLHead(BaseModule):
    r"""The head of `CPRFL <https://arxiv.org/abs/2408.08125>`_
    (category-prompt refined feature learning).

    It scores an image against the CLIP label embeddings :math:`W` (C, m) of
    the current vocabulary, given at call time (the vocabulary is data):

    - visual tokens: the last feature map (B, d0, h, w) flattened over its
      v = h * w positions and projected, :math:`F = f W_v + b_v` (B, v, d);
    - prompt initialisation (PI):
      :math:`P = \mathrm{GELU}(W W_1 + b_1) W_2 + b_2` (C, d), with a hidden
      width :math:`t = \lfloor \tau d \rfloor`;
    - visual-semantic interaction (VSI): one transformer block over
      :math:`Z = [F; P]` per image; only the outputs at the prompt positions
      are kept, :math:`P'` (B, C, d);
    - scoring: :math:`s_i = \langle p'_i, p_i \rangle`, each category's
      refined feature against its own prompt. These are logits; the loss and
      :meth:`predict` apply the sigmoid.

    Nothing is detached: the prompts get gradients both through the VSI
    layer and directly through the scoring (the paper's dual-path
    back-propagation).

    The defaults are the authors' code (github jiexuanyan/CPRFL): d = 2048,
    PI Linear(1024, 1024) -> GELU -> Linear(1024, 2048) on CLIP RN50's
    1024-d text features, the VSI block :class:`CPRFLVSIBlock` (pre-norm,
    no residual connections, 8 heads of width 512), PyTorch's default
    initialisation, and ASL with its focusing weight detached
    (:class:`DetachedAsymmetricLoss`).

    Args:
        in_channels (int): Channels d0 of the feature map. Defaults to 2048
            (ResNet-101).
        text_channels (int): Width m of the label embeddings. Defaults to
            1024 (CLIP RN50).
        embed_dims (int): Width d of the visual tokens and prompts.
            Defaults to 2048.
        tau (float): Hidden width of PI as a fraction of ``embed_dims``.
            Defaults to 0.5.
        vsi_type (str): ``'cprfl'``: the authors' block
            (:class:`CPRFLVSIBlock`); ``'encoder_layer'``: PyTorch's
            ``nn.TransformerEncoderLayer`` (residual connections, ReLU,
            biased q / k / v of width ``embed_dims / num_heads``), a
            different function. Defaults to ``'cprfl'``.
        num_heads (int): Attention heads of the VSI layer. Defaults to 8.
        head_dims (int): Width of each attention head of the ``'cprfl'``
            block; ``'encoder_layer'`` uses ``embed_dims // num_heads``.
            Defaults to 512.
        feedforward_channels (int): Hidden width of the VSI layer's FFN.
            Defaults to 2048.
        dropout (float): Dropout of the VSI layer. Defaults to 0.1.
        norm_first (bool): ``'encoder_layer'`` only: layer norm before
            attention and FFN (pre-norm) instead of after (post-norm,
            PyTorch's default). Defaults to False.
        prompt_init_std (float, optional): If given, PI's last layer starts
            from N(0, std) weights and zero bias, so that every score of a
            residual (``'encoder_layer'``) block starts near 0; mmovl's
            earlier head used 0.02. Defaults to None (PyTorch's default
            initialisation, as the authors).
        loss (dict): The loss on the logits, called as
            ``loss(logits, multi_hot)``. Defaults to
            ``DetachedAsymmetricLoss`` with the paper's settings (gamma+ 0,
            gamma- 4, clip 0.05), the focusing weight without gradient as
            the authors' code; mmpretrain's ``AsymmetricLoss`` differentiates
            it.
        init_cfg (dict, optional): Defaults to None.

    Note:
        Every label costs a pass of its prompt through the VSI layer per
        image, and the attention spans all C prompts, so the head's cost
        grows with C\ :sup:`2`: it is made for closed sets of tens of
        classes. Scoring more than :attr:`LARGE_VOCABULARY` labels warns once
        (``bench/bench_vocab_cost.py --arch R-101`` measures it).

    Examples:
        >>> import torch
        >>> from mmovl.models.heads import CPRFLHead
        >>> head = CPRFLHead(in_channels=8, text_channels=6, embed_dims=16,
        ...                  num_heads=2, head_dims=8, feedforward_channels=32)
        >>> feats = (torch.randn(2, 8, 3, 3), )  # a backbone's stages
        >>> labels = torch.randn(5, 6)  # 5 labels now, any number later
        >>> head(feats, labels).shape
        torch.Size([2, 5])
    """

    LARGE_VOCABULARY = 1000

    VSI_TYPES = ('cprfl', 'encoder_layer')

    def __init__(self,
                 in_channels: int = 2048,
                 text_channels: int = 1024,
                 embed_dims: int = 2048,
                 tau: float = 0.5,
                 vsi_type: str = 'cprfl',
                 num_heads: int = 8,
                 head_dims: int = 512,
                 feedforward_channels: int = 2048,
                 dropout: float = 0.1,
                 norm_first: bool = False,
                 prompt_init_std: Optional[float] = None,
                 loss: dict = dict(
                     type='DetachedAsymmetricLoss',
                     gamma_pos=0.0,
                     gamma_neg=4.0,
                     clip=0.05,
                     use_sigmoid=True),
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        hidden = int(tau * embed_dims)
        if hidden < 1:
            raise ValueError(f'tau * embed_dims must be at least 1, got '
                             f'{tau} * {embed_dims}.')
        if vsi_type not in self.VSI_TYPES:
            raise ValueError(f'vsi_type must be one of {self.VSI_TYPES}, '
                             f'got {vsi_type!r}.')
        self.in_channels = in_channels
        self.text_channels = text_channels
        self.embed_dims = embed_dims
        self.vsi_type = vsi_type
        self.visual_proj = nn.Linear(in_channels, embed_dims)
        self.prompt_init = nn.Sequential(
            nn.Linear(text_channels, hidden), nn.GELU(),
            nn.Linear(hidden, embed_dims))
        if prompt_init_std is not None:
            # With a residual VSI layer, large prompts make every score
            # start at a large <p, p>: every label confidently positive, and
            # the asymmetric loss then drives all scores negative where its
            # down-weighted negatives leave almost no gradient.
            nn.init.normal_(self.prompt_init[2].weight, std=prompt_init_std)
            nn.init.zeros_(self.prompt_init[2].bias)
        if vsi_type == 'cprfl':
            self.vsi = CPRFLVSIBlock(
                embed_dims=embed_dims,
                num_heads=num_heads,
                head_dims=head_dims,
                feedforward_channels=feedforward_channels,
                dropout=dropout)
        else:
            self.vsi = nn.TransformerEncoderLayer(
                d_model=embed_dims,
                nhead=num_heads,
                dim_feedforward=feedforward_channels,
                dropout=dropout,
                norm_first=norm_first,
                batch_first=True)
        self.loss_module = MODELS.build(loss)

    # -- the three steps ----------------------------------------------------
    def visual_tokens(self, feats) -> torch.Tensor:
        """Project the feature map to visual tokens.

        Args:
            feats (tuple | torch.Tensor): A backbone's tuple of stages (the
                last one is used), or that stage itself: a feature map
                (B, d0, h, w), or a ViT's pair ``(cls_token (B, d0),
                patch_tokens (B, L, d0))`` (``OpenCLIPViT``'s
                ``'cls_patches'``; the CLS token becomes the first of
                L + 1 tokens).

        Returns:
            torch.Tensor: F, shape (B, v, d): v = h * w, or L + 1.
        """
        if isinstance(feats, (tuple, list)) and not _is_cls_patches(feats):
            feats = feats[-1]
        if isinstance(feats, (tuple, list)):
            # a ViT's (cls_token (B, d0), patch_tokens (B, L, d0)): the
            # global token joins the patches as one more visual token
            if not _is_cls_patches(feats):
                raise ValueError('feats must be a feature map or a pair '
                                 '(cls_token, patch_tokens).')
            cls_token, patches = feats
            if (cls_token.shape[1] != self.in_channels
                    or patches.shape[2] != self.in_channels):
                raise ValueError(
                    f'(cls_token, patch_tokens) must have shapes (B, '
                    f'{self.in_channels}) and (B, L, {self.in_channels}), got '
                    f'{tuple(cls_token.shape)} and {tuple(patches.shape)}.')
            return self.visual_proj(
                torch.cat([cls_token[:, None], patches], dim=1))
        if feats.dim() != 4 or feats.shape[1] != self.in_channels:
            raise ValueError(f'feats must have shape (B, {self.in_channels}, '
                             f'h, w), got {tuple(feats.shape)}.')
        return self.visual_proj(feats.flatten(2).transpose(1, 2))

    def init_prompts(self, label_embeds: torch.Tensor) -> torch.Tensor:
        """Prompt initialisation (PI) from the label embeddings.

        Args:
            label_embeds (torch.Tensor): W, shape (C, m).

        Returns:
            torch.Tensor: P, shape (C, d).
        """
        check_label_embeds(label_embeds, self.text_channels)
        weight = self.prompt_init[0].weight
        return self.prompt_init(label_embeds.to(weight.device, weight.dtype))

    def refine(self, tokens: torch.Tensor,
               prompts: torch.Tensor) -> torch.Tensor:
        """Visual-semantic interaction (VSI).

        Args:
            tokens (torch.Tensor): F, shape (B, v, d).
            prompts (torch.Tensor): P, shape (C, d), shared by the images.

        Returns:
            torch.Tensor: P', the block's outputs at the prompt positions,
            shape (B, C, d).
        """
        batch, num_tokens = tokens.shape[:2]
        self._warn_large_vocabulary(prompts.shape[0])
        z = torch.cat([tokens, prompts.expand(batch, -1, -1)], dim=1)
        return self.vsi(z)[:, num_tokens:]

    def _warn_large_vocabulary(self, num_labels: int) -> None:
        if (num_labels > self.LARGE_VOCABULARY
                and not getattr(self, '_warned_large', False)):
            self._warned_large = True
            warnings.warn(
                f'CPRFLHead scores {num_labels} labels: its VSI layer runs '
                'every prompt through a transformer layer per image, with '
                'attention over all prompts, so time and memory grow with '
                f'the square of the vocabulary (above '
                f'{self.LARGE_VOCABULARY} labels this can exceed the '
                'backbone many times over).', stacklevel=3)

    def forward(self, feats, label_embeds: torch.Tensor) -> torch.Tensor:
        """Score the images against the labels.

        Args:
            feats (torch.Tensor | tuple): The feature map (B, d0, h, w), or a
                backbone's tuple of stages.
            label_embeds (torch.Tensor): W of the current vocabulary (C, m).

        Returns:
            torch.Tensor: The logits :math:`\\langle p'_i, p_i \\rangle`,
            shape (B, C).
        """
        prompts = self.init_prompts(label_embeds)
        refined = self.refine(self.visual_tokens(feats), prompts)
        return (refined * prompts).sum(-1)

    # -- loss and prediction ------------------------------------------------
    def loss(self, feats, label_embeds: torch.Tensor,
             data_samples: List[DataSample]) -> Dict[str, torch.Tensor]:
        """The loss of the logits against the samples' labels.

        The target of an image is its ``gt_score`` (C, ) if it has one, else
        the multi-hot of its ``gt_label`` indices into the C labels.

        Args:
            feats (torch.Tensor | tuple): The feature map or stages.
            label_embeds (torch.Tensor): W, shape (C, m).
            data_samples (List[DataSample]): The B annotated samples.

        Returns:
            dict: ``dict(loss_cls=...)``.
        """
        logits = self(feats, label_embeds)
        if len(data_samples) != logits.shape[0]:
            raise ValueError(f'Got {len(data_samples)} data samples for '
                             f'{logits.shape[0]} images.')
        target = multi_hot_targets(
            data_samples, logits.shape[1], logits.device, allow_unknown=False)
        # float32 under mixed precision too (bfloat16 / float16 logits)
        logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
        return dict(loss_cls=self.loss_module(logits, target))

    def predict(
        self,
        feats,
        label_embeds: torch.Tensor,
        data_samples: Optional[List[Optional[DataSample]]] = None
    ) -> List[DataSample]:
        """Score the images; ``pred_score`` is the sigmoid of the logits.

        Args:
            feats (torch.Tensor | tuple): The feature map or stages.
            label_embeds (torch.Tensor): W, shape (C, m).
            data_samples (List[DataSample], optional): Samples to fill in;
                new ones are made where None. Defaults to None.

        Returns:
            List[DataSample]: One sample per image with ``pred_score`` (C, ).
        """
        scores = self(feats, label_embeds).detach().sigmoid()
        if data_samples is None:
            data_samples = [None] * scores.shape[0]
        results = []
        for score, sample in zip(scores, data_samples):
            sample = DataSample() if sample is None else sample
            results.append(sample.set_pred_score(score))
        return results
