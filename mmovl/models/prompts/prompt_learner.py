# Copyright (c) mmovl contributors. All rights reserved.
from typing import Callable, NamedTuple, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS

__all__ = [
    'MKTPromptLearner', 'TextTower', 'get_text_tower', 'encode_text_embeds'
]


class TextTower(NamedTuple):
    """The parts of an open_clip text tower that ``encode_text`` runs."""
    token_embedding: nn.Embedding
    positional_embedding: torch.Tensor
    transformer: nn.Module
    attn_mask: Optional[torch.Tensor]
    ln_final: nn.Module
    text_projection: Optional[torch.Tensor]
    pool_type: str
    eos_id: Optional[int]


def get_text_tower(clip_model: nn.Module) -> TextTower:
    """Find the text tower of an open_clip model.

    ``open_clip.CLIP`` keeps the tower's parts on the model itself;
    ``CustomTextCLIP`` keeps an ``open_clip`` ``TextTransformer`` as ``.text``.
    Towers that append a CLS token (CoCa) or mask padding (bidirectional
    towers) are not supported, nor are Hugging Face text towers.

    Args:
        clip_model (nn.Module): An open_clip model.

    Returns:
        TextTower: Its text-encoder parts.
    """
    text = getattr(clip_model, 'text', None)
    if text is None:
        owner, pool_type = clip_model, 'text_pool_type'
        eos_id = getattr(clip_model, 'text_eos_id', None)
    else:
        owner, pool_type = text, 'pool_type'
        eos_id = getattr(text, 'eos_id', None)
        if getattr(text, 'cls_emb', None) is not None or \
                getattr(text, 'use_pad_mask', False):
            raise NotImplementedError(
                'Prompt learning supports causal open_clip text towers '
                'without an appended CLS token or a padding mask.')
    parts = ('token_embedding', 'positional_embedding', 'transformer',
             'ln_final')
    if not all(hasattr(owner, p) for p in parts + (pool_type, )):
        raise TypeError(f'{type(clip_model).__name__} has no open_clip text '
                        f'transformer ({", ".join(parts)})')
    return TextTower(owner.token_embedding,
                     owner.positional_embedding, owner.transformer,
                     getattr(owner, 'attn_mask', None), owner.ln_final,
                     getattr(owner, 'text_projection', None),
                     getattr(owner, pool_type), eos_id)


def _pool_index(tokens: torch.Tensor, pool_type: str,
                eos_id: Optional[int]) -> torch.Tensor:
    """Position of the token whose feature is the text embedding."""
    if pool_type == 'argmax':  # CLIP's EOT has the largest id
        return tokens.argmax(dim=-1)
    if pool_type == 'eos':
        return (tokens == eos_id).int().argmax(dim=-1)
    if pool_type == 'first':
        return tokens.new_zeros(tokens.shape[0])
    if pool_type == 'last':
        return tokens.new_full((tokens.shape[0], ), tokens.shape[1] - 1)
    raise ValueError(f'Text pooling {pool_type!r} gives no text embedding.')


def encode_text_embeds(tower: TextTower, embeds: torch.Tensor,
                       tokens: torch.Tensor) -> torch.Tensor:
    """open_clip's ``encode_text`` from token embeddings instead of ids.

    The same steps as ``CLIP.encode_text`` of open_clip 3.x, after its token
    lookup: add the positional embedding, run the transformer with the
    causal mask, ``ln_final``, pool the EOT (or ``pool_type``) position of
    ``tokens``, project. Gradients reach ``embeds``.

    Args:
        tower (TextTower): See :func:`get_text_tower`.
        embeds (torch.Tensor): (B, L, W) token embeddings.
        tokens (torch.Tensor): (B, L) the token ids the pooling reads.

    Returns:
        torch.Tensor: (B, D) unnormalised text features.
    """
    cast_dtype = tower.transformer.get_cast_dtype()
    length = embeds.shape[1]
    x = embeds.to(cast_dtype) + \
        tower.positional_embedding[:length].to(cast_dtype)
    attn_mask = tower.attn_mask
    if attn_mask is not None:
        attn_mask = attn_mask[:length, :length]
    x = tower.transformer(x, attn_mask=attn_mask)
    x = tower.ln_final(x)
    index = _pool_index(tokens, tower.pool_type, tower.eos_id)
    x = x[torch.arange(x.shape[0], device=x.device), index]
    proj = tower.text_projection
    if isinstance(proj, nn.Linear):
        x = proj(x)
    elif proj is not None:
        x = x @ proj
    return x


@MODELS.register_module()
class MKTPromptLearner(BaseModule):
    """Learnable prompt context for CLIP label embeddings (MKT stage 2).

    The context words of ``init_template`` (those before ``'{}'``, e.g.
    ``a photo of a``) become learnable vectors :attr:`ctx` (n_ctx, W), one
    per BPE token, initialised from their token embeddings, as CoOp's
    class-at-the-end context. A label name is encoded by tokenizing the
    template filled with it, putting :attr:`ctx` in place of the context
    tokens' embeddings (the positions right after the start token) and
    running the frozen CLIP text transformer from there. Words after
    ``'{}'`` (the full stop) keep their fixed embeddings. The context is
    shared by all labels, so once tuned on the seen labels it encodes any
    label name.

    With :attr:`ctx` at its initial value, :meth:`encode` equals CLIP's
    ``encode_text`` of the manual template (``CLIPTeacher.encode_labels(
    names, init_template)``).

    The CLIP model is passed to :meth:`encode`, not kept: it belongs to the
    teacher, which keeps it out of the module registry (see
    ``CLIPTeacher``); this module holds :attr:`ctx` only.

    Note:
        MKT's official stage 2 prompts ``There is a {} in the scene`` and
        trains the token-embedding rows of every non-name token of the
        prompt (including the start/end tokens and the words after the
        name). This module learns the context before the name only.

    Args:
        clip_model (nn.Module): The open_clip model whose token embeddings
            initialise the context (a ``CLIPTeacher``'s ``clip``). Not kept.
        tokenizer (Callable): Its open_clip BPE tokenizer (the teacher's
            ``tokenizer``), with ``encode``. Not kept.
        init_template (str): The template with one ``'{}'`` whose words
            before it initialise the context. Defaults to
            ``'a photo of a {}.'``.
        init_cfg (dict, optional): Defaults to None.

    Examples:
        >>> import open_clip
        >>> from mmovl.models.prompts import MKTPromptLearner
        >>> clip = open_clip.create_model('mmovl-toy-vit')
        >>> tokenizer = open_clip.get_tokenizer('mmovl-toy-vit')
        >>> prompts = MKTPromptLearner(clip, tokenizer)
        >>> prompts.ctx.shape  # 'a photo of a' x the text width
        torch.Size([4, 64])
        >>> prompts.encode(['cat', 'dog'], clip, tokenizer).shape
        torch.Size([2, 64])
    """

    def __init__(self,
                 clip_model: nn.Module,
                 tokenizer: Callable,
                 init_template: str = 'a photo of a {}.',
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if not isinstance(init_template, str) or \
                init_template.count('{}') != 1:
            raise ValueError('init_template must hold one "{}", got '
                             f'{init_template!r}.')
        if not hasattr(tokenizer, 'encode'):
            raise TypeError('MKTPromptLearner needs an open_clip BPE '
                            'tokenizer (with encode()), got '
                            f'{type(tokenizer).__name__}.')
        context_ids = tokenizer.encode(init_template.split('{}')[0])
        if not context_ids:
            raise ValueError(f'init_template {init_template!r} has no '
                             'context words before "{}" to learn.')
        self.init_template = init_template
        self.context_ids: Tuple[int, ...] = tuple(context_ids)
        embedding = get_text_tower(clip_model).token_embedding.weight
        self.ctx = nn.Parameter(
            embedding.detach()[list(context_ids)].clone().float())
        # The tokens of the last vocabulary: training encodes the same names
        # every step.
        self._tokens: Tuple[tuple, Optional[torch.Tensor]] = ((), None)

    @property
    def n_ctx(self) -> int:
        """int: The number of context vectors."""
        return self.ctx.shape[0]

    def extra_repr(self) -> str:
        return f'init_template={self.init_template!r}, n_ctx={self.n_ctx}'

    def tokenize(self, names: Sequence[str],
                 tokenizer: Callable) -> torch.Tensor:
        """Token ids (C, L) of the template filled with each name.

        Raises:
            ValueError: If a prompt does not start with the start token and
                the context tokens (e.g. it was truncated).
        """
        names = tuple(names)
        key = (id(tokenizer), names)
        if self._tokens[0] == key:
            return self._tokens[1]
        tokens = tokenizer([self.init_template.format(n) for n in names])
        ctx_ids = torch.tensor(self.context_ids)
        n = self.n_ctx
        bad = [
            name for name, row in zip(names, tokens)
            if row.numel() < n + 2 or not torch.equal(row[1:n + 1], ctx_ids)
        ]
        if bad:
            raise ValueError(
                f'The prompts of {bad[:5]} do not hold the context tokens of '
                f'{self.init_template!r} right after the start token.')
        self._tokens = (key, tokens)
        return tokens

    def encode(self, names: Sequence[str], clip_model: nn.Module,
               tokenizer: Callable) -> torch.Tensor:
        """L2-normalised label embeddings with the learned context.

        Args:
            names (Sequence[str]): The C label names.
            clip_model (nn.Module): The (frozen) open_clip model.
            tokenizer (Callable): Its tokenizer.

        Returns:
            torch.Tensor: (C, D) float32 unit vectors, differentiable with
            respect to :attr:`ctx`.
        """
        if isinstance(names, str) or not names:
            raise ValueError('names must be a non-empty sequence of strings.')
        tower = get_text_tower(clip_model)
        width = tower.token_embedding.weight.shape[1]
        if width != self.ctx.shape[1]:
            raise ValueError(f'The context has width {self.ctx.shape[1]} but '
                             f'the text tower {width}.')
        device = tower.token_embedding.weight.device
        tokens = self.tokenize(names, tokenizer).to(device)
        embeds = tower.token_embedding(tokens)
        ctx = self.ctx.to(device, embeds.dtype)
        ctx = ctx.unsqueeze(0).expand(len(tokens), -1, -1)
        embeds = torch.cat([embeds[:, :1], ctx, embeds[:, 1 + self.n_ctx:]],
                           dim=1)
        feats = encode_text_embeds(tower, embeds, tokens)
        return F.normalize(feats.float(), dim=-1)
