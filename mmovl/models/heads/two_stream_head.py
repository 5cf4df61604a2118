# Copyright (c) mmovl contributors. All rights reserved.
from typing import Dict, List, Optional, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from .utils import (TopkThreads, check_label_embeds, multi_hot_targets,
                    topk_mean)

# (cls_token (B, W), patch_tokens (B, N, W)): a CLIP ViT after ln_post.
Feats = Tuple[torch.Tensor, torch.Tensor]
_STREAMS = ('both', 'global', 'local')
_COMBINES = ('normalized_mean', 'mean')


@MODELS.register_module()
class TwoStreamHead(BaseModule):
    r"""The two-stream head of `MKT <https://arxiv.org/abs/2207.01887>`_.

    It scores an image against the label embeddings :math:`Z` (C, D) of the
    current vocabulary, given at call time (the vocabulary is data, not
    weights). From the CLS token and the patch tokens of a CLIP ViT (after
    ``ln_post``, before the projection):

    - global stream: :math:`g_c = \langle e_{cls}, z_c \rangle`;
    - local stream: :math:`l_c` is the mean of the ``topk`` largest
      :math:`\langle e_{patch_j}, z_c \rangle` over the patches :math:`j`;
    - combined as MKT's code does (``combine='normalized_mean'``): each
      score vector is L2-normalised across the labels, then
      :math:`s = (g / \|g\| + l / \|l\|) / 2`. ``combine='mean'`` averages
      the raw scores. With one stream, ``s`` is that stream (normalised
      across the labels with ``'normalized_mean'``, as the code's global-only
      ablation). A normalised score vector needs C > 1 labels to rank them.

    The embeddings are ``e = normalize(x @ proj)``. By default one
    projection serves both streams, as MKT's code uses CLIP's trainable
    ``visual.proj`` for both (start it from CLIP with :meth:`init_proj`);
    ``share_projection=False`` gives the paper's separate global and local
    linear heads. MKT's code does not L2-normalise the projected tokens
    (``normalize_embeds=False`` reproduces that): the global stream is the
    same either way after the normalisation across labels, but the local
    top-k then weights patches by their norm, and :meth:`embed` returns raw
    CLIP-scale features (MKT distils those against the teacher's raw
    features).

    Args:
        in_channels (int): Token width W. Defaults to 768 (ViT-B/16).
        out_channels (int): Embedding dimension D. Defaults to 512.
        topk (int): Patches averaged per label in the local stream; more than
            the N patches of an input means all N. Defaults to 16 (MKT's
            code; the paper's ablation picks 18).
        streams (str): ``'both'``, ``'global'`` or ``'local'``.
            Defaults to ``'both'``.
        combine (str): ``'normalized_mean'`` or ``'mean'``.
            Defaults to ``'normalized_mean'``.
        share_projection (bool): One projection (``proj``) for both streams,
            else ``global_proj`` and ``local_proj``. Defaults to True.
        normalize_embeds (bool): L2-normalise the projected tokens.
            Defaults to True.
        loss (dict): The loss on the scores. Defaults to
            ``dict(type='RankLoss')``.
        topk_threads (int, optional): Threads over which the local stream's
            top-k of a large score map is split at inference on a CPU (see
            :func:`mmovl.models.heads.utils.topk_mean`). The head owns them
            (:class:`mmovl.models.heads.utils.TopkThreads`, started at the
            first call that needs them, in :attr:`topk_pool`). None:
            ``torch.get_num_threads()``, as torch's own ops use; 1: the
            calling thread only. Defaults to None.
        init_cfg (dict, optional): Defaults to None.

    Examples:
        >>> import torch, mmovl.models.heads
        >>> from mmovl.models.heads import TwoStreamHead
        >>> head = TwoStreamHead(in_channels=8, out_channels=4, topk=2)
        >>> feats = (torch.randn(2, 8), torch.randn(2, 5, 8))
        >>> labels = torch.nn.functional.normalize(torch.randn(3, 4), dim=-1)
        >>> head(feats, labels).shape  # 3 labels now, any number later
        torch.Size([2, 3])
    """

    def __init__(self,
                 in_channels: int = 768,
                 out_channels: int = 512,
                 topk: int = 16,
                 streams: str = 'both',
                 combine: str = 'normalized_mean',
                 share_projection: bool = True,
                 normalize_embeds: bool = True,
                 loss: dict = dict(type='RankLoss'),
                 topk_threads: Optional[int] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if streams not in _STREAMS:
            raise ValueError(f'streams must be one of {_STREAMS}, got '
                             f'{streams!r}.')
        if combine not in _COMBINES:
            raise ValueError(f'combine must be one of {_COMBINES}, got '
                             f'{combine!r}.')
        if int(topk) != topk or topk < 1:
            raise ValueError(f'topk must be a positive integer, got {topk}.')
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.topk = int(topk)
        self.streams = streams
        self.combine = combine
        self.share_projection = share_projection
        self.normalize_embeds = normalize_embeds
        if share_projection:
            self.proj = nn.Linear(in_channels, out_channels, bias=False)
        else:
            # Only the projections in use exist, so that DDP finds no unused
            # parameters; the global one always serves the distillation.
            self.global_proj = nn.Linear(in_channels, out_channels, bias=False)
            if streams != 'global':
                self.local_proj = nn.Linear(
                    in_channels, out_channels, bias=False)
        self.loss_module = MODELS.build(loss)
        self.topk_pool = TopkThreads(topk_threads)

    @property
    def _global_proj(self) -> nn.Linear:
        return self.proj if self.share_projection else self.global_proj

    @property
    def _local_proj(self) -> Optional[nn.Linear]:
        if self.share_projection:
            return self.proj
        return getattr(self, 'local_proj', None)

    @property
    def _uses_patches(self) -> bool:
        return self.streams != 'global'

    @torch.no_grad()
    def init_proj(self, weight: torch.Tensor) -> None:
        """Copy a CLIP visual projection into every projection of the head.

        Args:
            weight (torch.Tensor): open_clip's ``visual.proj``, shape (W, D),
                used as ``tokens @ weight``.
        """
        shape = (self.in_channels, self.out_channels)
        if tuple(weight.shape) != shape:
            raise ValueError(f'The projection must have shape {shape} (W, D),'
                             f' got {tuple(weight.shape)}.')
        projs = [self._global_proj]
        if not self.share_projection and self._local_proj is not None:
            projs.append(self._local_proj)
        for proj in projs:
            proj.weight.copy_(weight.t())

    def _unpack(self, feats) -> Feats:
        # Also accept MMPretrain's tuple of stages and take the last one.
        if isinstance(feats, (tuple, list)) and feats and \
                isinstance(feats[-1], (tuple, list)):
            feats = feats[-1]
        if not (isinstance(feats, (tuple, list)) and len(feats) == 2):
            raise ValueError('feats must be a tuple (cls_token (B, W), '
                             'patch_tokens (B, N, W)).')
        cls_token, patch_tokens = feats
        width = self.in_channels
        if cls_token.dim() != 2 or cls_token.shape[1] != width:
            raise ValueError(f'cls_token must have shape (B, {width}), got '
                             f'{tuple(cls_token.shape)}.')
        if (patch_tokens.dim() != 3 or patch_tokens.shape[2] != width
                or patch_tokens.shape[0] != cls_token.shape[0]
                or patch_tokens.shape[1] == 0):
            raise ValueError(
                f'patch_tokens must have shape ({cls_token.shape[0]}, N, '
                f'{width}) with N > 0, got {tuple(patch_tokens.shape)}.')
        return cls_token, patch_tokens

    def _project(self, proj: nn.Linear, tokens: torch.Tensor) -> torch.Tensor:
        tokens = proj(tokens)
        return F.normalize(tokens, dim=-1) if self.normalize_embeds else tokens

    def embed_cls(self, feats: Feats) -> torch.Tensor:
        """The global embedding alone, e.g. for a distillation loss;
        cheaper than :meth:`embed`.

        Args:
            feats (tuple): ``(cls_token (B, W), patch_tokens (B, N, W))``.

        Returns:
            torch.Tensor: ``e_cls`` (B, D).
        """
        cls_token, _ = self._unpack(feats)
        return self._project(self._global_proj, cls_token)

    def embed(self,
              feats: Feats) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Project the tokens.

        Args:
            feats (tuple): ``(cls_token (B, W), patch_tokens (B, N, W))``.

        Returns:
            tuple: ``e_cls`` (B, D) and ``e_patch`` (B, N, D); ``e_patch``
            is None when the head has no local stream and separate
            projections (there is no local projection then).
        """
        return self._embed(feats, with_patches=True)

    def _embed(self, feats: Feats, with_patches: bool):
        cls_token, patch_tokens = self._unpack(feats)
        e_cls = self._project(self._global_proj, cls_token)
        local_proj = self._local_proj
        if not with_patches or local_proj is None:
            return e_cls, None
        return e_cls, self._project(local_proj, patch_tokens)

    def _scores(self, e_cls: torch.Tensor, e_patch: Optional[torch.Tensor],
                label_embeds: torch.Tensor) -> torch.Tensor:
        check_label_embeds(label_embeds, self.out_channels)
        label_embeds = label_embeds.to(e_cls.dtype)
        scores = []
        if self.streams in ('both', 'global'):
            scores.append(e_cls @ label_embeds.t())
        if self.streams in ('both', 'local'):
            sims = e_patch @ label_embeds.t()  # (B, N, C)
            scores.append(topk_mean(sims, self.topk, 1, self.topk_pool))
        if self.combine == 'normalized_mean':
            scores = [F.normalize(s, dim=-1) for s in scores]
        return sum(scores) / len(scores)

    def forward(self, feats: Feats,
                label_embeds: torch.Tensor) -> torch.Tensor:
        """Score the images against the labels.

        Args:
            feats (tuple): ``(cls_token (B, W), patch_tokens (B, N, W))``.
            label_embeds (torch.Tensor): L2-normalised label embeddings of
                the current vocabulary, shape (C, D).

        Returns:
            torch.Tensor: The scores, shape (B, C).
        """
        return self._scores(*self._embed(feats, self._uses_patches),
                            label_embeds)

    def loss(
        self,
        feats: Feats,
        label_embeds: torch.Tensor,
        data_samples: List[DataSample],
        return_embeds: bool = False
    ) -> Union[Dict[str, torch.Tensor], Tuple[Dict[str, torch.Tensor],
                                              torch.Tensor]]:
        """Compute the loss of the scores against the data samples' labels.

        The target of each image is its ``gt_score`` (C, ) if it has one (1
        positive, 0 negative, -1 unknown), else the multi-hot of its
        ``gt_label`` indices into the C labels of ``label_embeds``.

        Args:
            feats (tuple): ``(cls_token (B, W), patch_tokens (B, N, W))``.
            label_embeds (torch.Tensor): Label embeddings, shape (C, D).
            data_samples (List[DataSample]): The B annotated samples.
            return_embeds (bool): Also return ``e_cls`` (B, D), the tensor
                the global stream scored, for a distillation loss without
                projecting again. Defaults to False.

        Returns:
            dict | tuple: ``dict(loss_cls=...)`` (the configured loss,
            ``RankLoss`` by default), or ``(losses, e_cls)`` with
            ``return_embeds=True``.
        """
        e_cls, e_patch = self._embed(feats, self._uses_patches)
        scores = self._scores(e_cls, e_patch, label_embeds)
        if len(data_samples) != scores.shape[0]:
            raise ValueError(f'Got {len(data_samples)} data samples for '
                             f'{scores.shape[0]} images.')
        target = multi_hot_targets(data_samples, scores.shape[1],
                                   scores.device)
        losses = dict(loss_cls=self.loss_module(scores, target))
        return (losses, e_cls) if return_embeds else losses

    def predict(
        self,
        feats: Feats,
        label_embeds: torch.Tensor,
        data_samples: Optional[List[Optional[DataSample]]] = None
    ) -> List[DataSample]:
        """Score the images and store the scores as ``pred_score``.

        Args:
            feats (tuple): ``(cls_token (B, W), patch_tokens (B, N, W))``.
            label_embeds (torch.Tensor): Label embeddings, shape (C, D).
            data_samples (List[DataSample], optional): Samples to fill in;
                new ones are made where None. Defaults to None.

        Returns:
            List[DataSample]: One sample per image with ``pred_score`` (C, ).
        """
        scores = self(feats, label_embeds).detach()
        if data_samples is None:
            data_samples = [None] * scores.shape[0]
        results = []
        for score, sample in zip(scores, data_samples):
            sample = DataSample() if sample is None else sample
            results.append(sample.set_pred_score(score))
        return results
