# Copyright (c) mmovl contributors. All rights reserved.
from typing import List, Optional, Tuple, Union

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from mmpretrain.registry import MODELS


def _all_gather_padded(tensor: torch.Tensor, sizes: List[int],
                       group) -> torch.Tensor:
    """Concatenate every rank's ``tensor`` along dim 0 (no autograd).

    Collectives need equal shapes, so shards are padded to the largest one
    and the padding is cut off again.
    """
    tensor = tensor.contiguous()
    padded = tensor.new_zeros((max(sizes), ) + tensor.shape[1:])
    padded[:tensor.shape[0]] = tensor
    chunks = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(chunks, padded, group=group)
    return torch.cat([chunk[:n] for chunk, n in zip(chunks, sizes)])


class _AllGatherWithGrad(torch.autograd.Function):
    """All-gather whose backward hands each rank the gradient of its shard
    summed over the losses of all ranks.

    Only collectives that every backend has (all_gather, all_reduce) are
    used, so it runs on gloo as well as on NCCL.
    """

    @staticmethod
    def forward(ctx, tensor, sizes, start, group):
        ctx.span = (start, start + tensor.shape[0])
        ctx.group = group
        return _all_gather_padded(tensor, sizes, group)

    @staticmethod
    def backward(ctx, grad_output):
        grad = grad_output.contiguous().clone()
        dist.all_reduce(grad, group=ctx.group)
        start, end = ctx.span
        return grad[start:end], None, None, None


def gather_features(
    image_embeds: torch.Tensor,
    text_embeds: torch.Tensor,
    labels: torch.Tensor,
    group: Optional[object] = None
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """Gather image-text-label triplets from all ranks.

    The embeddings keep their gradient: in backward, each rank receives for
    its own rows the gradient summed over the losses computed on all ranks,
    so that DDP's averaging of parameter gradients yields the gradient of
    the mean of the per-rank losses. Every rank must therefore run backward.
    Ranks may hold different numbers of rows. Without an initialised process
    group, or with a single rank, the inputs come back unchanged.

    Args:
        image_embeds (torch.Tensor): Local image embeddings of shape (B, D).
        text_embeds (torch.Tensor): Local text embeddings of shape (B, D).
        labels (torch.Tensor): Local labels of shape (B, ).
        group (ProcessGroup, optional): The process group to gather over.
            Defaults to None (the default group).

    Returns:
        tuple: The gathered image embeddings, text embeddings and labels
        (ordered by rank) and the index of this rank's first row in them.

    Examples:
        >>> import torch
        >>> from mmovl.models.losses import gather_features
        >>> image, text = torch.eye(3), torch.eye(3)
        >>> outputs = gather_features(image, text, torch.arange(3))
        >>> outputs[0] is image, outputs[3]  # not distributed: unchanged
        (True, 0)
    """
    if not (dist.is_available() and dist.is_initialized()):
        return image_embeds, text_embeds, labels, 0
    world_size = dist.get_world_size(group)
    if world_size == 1:
        return image_embeds, text_embeds, labels, 0
    rank = dist.get_rank(group)
    num = image_embeds.shape[0]
    size = torch.tensor([num], device=image_embeds.device)
    sizes = [torch.empty_like(size) for _ in range(world_size)]
    dist.all_gather(sizes, size, group=group)
    sizes = [int(s) for s in sizes]
    start = sum(sizes[:rank])
    # One collective for both modalities.
    dim = image_embeds.shape[1]
    both = _AllGatherWithGrad.apply(
        torch.cat([image_embeds, text_embeds], dim=1), sizes, start, group)
    all_labels = _all_gather_padded(labels, sizes, group)
    return both[:, :dim], both[:, dim:], all_labels, start


def _check_inputs(image_embeds, text_embeds, labels, logit_scale):
    for name, embeds in (('image_embeds', image_embeds), ('text_embeds',
                                                          text_embeds)):
        if not isinstance(embeds, torch.Tensor):
            raise ValueError(f'{name} must be a 2-D tensor (B, D), got '
                             f'{type(embeds).__name__}.')
        if embeds.dim() != 2:
            raise ValueError(f'{name} must be a 2-D tensor (B, D), got shape '
                             f'{tuple(embeds.shape)}.')
    if image_embeds.shape != text_embeds.shape:
        raise ValueError('image_embeds and text_embeds must have the same '
                         f'shape (B, D), got {tuple(image_embeds.shape)} and '
                         f'{tuple(text_embeds.shape)}.')
    if image_embeds.shape[0] == 0:
        raise ValueError('The batch is empty.')
    labels = torch.as_tensor(labels, device=image_embeds.device)
    if labels.shape != image_embeds.shape[:1]:
        raise ValueError(f'labels must have shape ({image_embeds.shape[0]}, ) '
                         'to match the embeddings, got shape '
                         f'{tuple(labels.shape)}.')
    if (labels.is_floating_point() or labels.is_complex()
            or labels.dtype == torch.bool):
        raise ValueError(f'labels must be integers, got dtype {labels.dtype}.')
    if not isinstance(logit_scale, torch.Tensor):
        logit_scale = torch.tensor(
            float(logit_scale),
            dtype=torch.promote_types(image_embeds.dtype, torch.float32),
            device=image_embeds.device)
    if logit_scale.numel() != 1:
        raise ValueError('logit_scale must be a scalar, got shape '
                         f'{tuple(logit_scale.shape)}.')
    return labels, logit_scale.reshape(())


@MODELS.register_module()
class UniCLLoss(nn.Module):
    r"""Bidirectional image-text-label contrastive loss of `UniCL
    <https://arxiv.org/abs/2204.03610>`_.

    With image embeddings :math:`u`, text embeddings :math:`v`, labels
    :math:`y` and the logit scale :math:`s` over a batch :math:`B`, and
    :math:`P(i) = \{k \in B: y_k = y_i\}`:

    .. math::
        L_{i2t} = -\frac{1}{|B|} \sum_{i \in B} \frac{1}{|P(i)|}
            \sum_{k \in P(i)} \log \frac{\exp(s \langle u_i, v_k \rangle)}
            {\sum_{j \in B} \exp(s \langle u_i, v_j \rangle)}

    :math:`L_{t2i}` is the same over texts (a softmax over the images of
    the batch for each text), and the loss is
    :math:`L_{i2t} + L_{t2i}`, times ``loss_weight``.

    Each direction is a cross-entropy against the row-normalised label
    affinity matrix, averaged over the batch as UniCL's soft-target
    cross-entropy (and CLIP's) averages it. With all labels distinct, the
    loss is ``CE(s U V^T, arange) + CE(s V U^T, arange)``: the sum of CLIP's
    two directions, i.e. twice open_clip's ``ClipLoss``, which averages
    them (``loss_weight=0.5`` gives its scale). The unique labels of
    image-text pairs must be unique across the global batch, not only within
    a rank's share of it.

    In distributed training (``gather=True`` and more than one rank), the
    triplets of all ranks are gathered with :func:`gather_features`; each
    rank returns the loss of its own images and texts as queries against
    the keys of the global batch. With equal shares per rank, the mean of
    the ranks' losses is the loss of the global batch, and DDP's averaging
    of gradients gives exactly its gradient.

    Args:
        loss_weight (float): Weight of the loss. Defaults to 1.0.
        gather (bool): Whether to contrast against the embeddings of all
            ranks in distributed training. Defaults to True.
        normalize (bool): Whether to L2-normalise the embeddings here. By
            default they must come normalised and are used as given.
            Defaults to False.

    Examples:
        >>> import torch
        >>> import torch.nn.functional as F
        >>> from mmovl.models.losses import UniCLLoss
        >>> image = F.normalize(torch.randn(4, 8), dim=-1)
        >>> text = F.normalize(torch.randn(4, 8), dim=-1)
        >>> labels = torch.tensor([0, 1, 1, 2])  # two images of class 1
        >>> loss = UniCLLoss()(image, text, labels, logit_scale=10.0)
        >>> loss.shape
        torch.Size([])
    """

    def __init__(self,
                 loss_weight: float = 1.0,
                 gather: bool = True,
                 normalize: bool = False) -> None:
        super().__init__()
        self.loss_weight = loss_weight
        self.gather = gather
        self.normalize = normalize

    def forward(self, image_embeds: torch.Tensor, text_embeds: torch.Tensor,
                labels: torch.Tensor,
                logit_scale: Union[torch.Tensor, float]) -> torch.Tensor:
        """Compute the loss.

        Args:
            image_embeds (torch.Tensor): L2-normalised image embeddings of
                shape (B, D).
            text_embeds (torch.Tensor): L2-normalised text embeddings of
                shape (B, D), pairs with the images row by row.
            labels (torch.Tensor): Integer labels of the pairs, shape (B, ).
            logit_scale (torch.Tensor | float): The multiplier of the cosine
                similarities (the exp of the learnable log-temperature), a
                scalar.

        Returns:
            torch.Tensor: The scalar loss (sum of both directions).
        """
        labels, logit_scale = _check_inputs(image_embeds, text_embeds, labels,
                                            logit_scale)
        if self.normalize:
            image_embeds = F.normalize(image_embeds, dim=-1)
            text_embeds = F.normalize(text_embeds, dim=-1)
        all_images, all_texts, all_labels = image_embeds, text_embeds, labels
        if self.gather:
            all_images, all_texts, all_labels, _ = gather_features(
                image_embeds, text_embeds, labels)
        # Rows: local queries; columns: keys of the (global) batch. The
        # label matrix is symmetric, so both directions share the target.
        # Under mixed precision the similarities come from a bfloat16 /
        # float16 matmul; the scale and the softmax are (at least) float32.
        dtype = torch.promote_types(image_embeds.dtype, torch.float32)
        logits_i2t = logit_scale * (image_embeds @ all_texts.t()).to(dtype)
        logits_t2i = logit_scale * (text_embeds @ all_images.t()).to(dtype)
        target = (labels[:, None] == all_labels[None, :]).to(logits_i2t.dtype)
        target = target / target.sum(dim=1, keepdim=True)
        loss = sum(-(target * F.log_softmax(logits, dim=1)).sum(dim=1).mean()
                   for logits in (logits_i2t, logits_t2i))
        return self.loss_weight * loss
