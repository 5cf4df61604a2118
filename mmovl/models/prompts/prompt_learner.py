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


_LEARN = ('context', 'all_but_name')


@MODELS.register_module()
class MKTPromptLearner(BaseModule):
    """Learnable prompt tokens for CLIP label embeddings (MKT stage 2).

    A label name is encoded by tokenizing ``init_template`` filled with it,
    putting learned vectors in place of some of the prompt's token
    embeddings and running the frozen CLIP text transformer from there. The
    learned vectors are shared by all labels, so once tuned on the seen
    labels they encode any label name. Two choices of what is learned:

    - ``learn='all_but_name'`` (MKT's official stage 2, which trains CLIP's
      token-embedding table while the name tokens keep their original
      embeddings): every token of the prompt that is not the name, i.e. the
      start token, the template's words before and after the name and the
      end token. One vector per distinct token id, as a row of the table: a
      word the template holds twice is one vector. They are
      :attr:`token_vectors` (K, W), for the ids :attr:`learned_ids`.
    - ``learn='context'`` (CoOp's class-at-the-end context): the words
      before ``'{}'`` (e.g. ``a photo of a``) become :attr:`ctx` (n_ctx, W),
      one vector per position; the start token and the words after the name
      keep their fixed embeddings.

    Both start from the token embeddings of the template, so that at
    initialisation :meth:`encode` equals CLIP's ``encode_text`` of the
    manual template (normalised with ``normalize=True``).

    The CLIP model is passed to :meth:`encode`, not kept: it belongs to the
    teacher, which keeps it out of the module registry (see
    ``CLIPTeacher``); this module holds the learned vectors only.

    Args:
        clip_model (nn.Module): The open_clip model whose token embeddings
            initialise the vectors (a ``CLIPTeacher``'s ``clip``). Not kept.
        tokenizer (Callable): Its open_clip BPE tokenizer (the teacher's
            ``tokenizer``), with ``encode``. Not kept.
        init_template (str): The template, with one ``'{}'`` for the name.
            Defaults to ``'a photo of a {}.'``.
        learn (str): ``'context'`` or ``'all_but_name'``.
            Defaults to ``'context'``.
        normalize (bool): L2-normalise the text features. MKT's official
            stage 2 scores with the raw features. Defaults to True.
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
        >>> mkt = MKTPromptLearner(clip, tokenizer, 'There is a {} in the '
        ...                        'scene', learn='all_but_name')
        >>> mkt.token_vectors.shape  # start, there, is, a, in, the, scene, end
        torch.Size([8, 64])
    """

    def __init__(self,
                 clip_model: nn.Module,
                 tokenizer: Callable,
                 init_template: str = 'a photo of a {}.',
                 learn: str = 'context',
                 normalize: bool = True,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if not isinstance(init_template, str) or \
                init_template.count('{}') != 1:
            raise ValueError('init_template must hold one "{}", got '
                             f'{init_template!r}.')
        if learn not in _LEARN:
            raise ValueError(f'learn must be one of {_LEARN}, got {learn!r}.')
        if not hasattr(tokenizer, 'encode'):
            raise TypeError('MKTPromptLearner needs an open_clip BPE '
                            'tokenizer (with encode()), got '
                            f'{type(tokenizer).__name__}.')
        before, after = init_template.split('{}')
        self.init_template = init_template
        self.learn = learn
        self.normalize = normalize
        self.context_ids: Tuple[int, ...] = tuple(tokenizer.encode(before))
        self.suffix_ids: Tuple[int, ...] = tuple(tokenizer.encode(after))
        embedding = get_text_tower(clip_model).token_embedding.weight
        if learn == 'context':
            if not self.context_ids:
                raise ValueError(f'init_template {init_template!r} has no '
                                 'context words before "{}" to learn.')
            self.ctx = nn.Parameter(
                embedding.detach()[list(self.context_ids)].clone().float())
        else:
            sot, eot = _special_ids(tokenizer)
            ids = (sot, ) + self.context_ids + self.suffix_ids + (eot, )
            self.learned_ids: Tuple[int, ...] = tuple(dict.fromkeys(ids))
            self.token_vectors = nn.Parameter(
                embedding.detach()[list(self.learned_ids)].clone().float())
            self._sot_eot = (sot, eot)
        # The tokens of the last vocabulary: training encodes the same names
        # every step.
        self._tokens: Tuple[tuple, Optional[tuple]] = ((), None)

    @property
    def n_ctx(self) -> int:
        """int: The number of context positions (before the name)."""
        return len(self.context_ids)

    def learned_state(self) -> torch.Tensor:
        """The learned vectors (detached), e.g. to tell whether embeddings
        encoded earlier are still current."""
        if self.learn == 'context':
            return self.ctx.detach()
        return self.token_vectors.detach()

    def extra_repr(self) -> str:
        return (f'init_template={self.init_template!r}, learn={self.learn!r}'
                f', normalize={self.normalize}')

    def tokenize(self, names: Sequence[str],
                 tokenizer: Callable) -> torch.Tensor:
        """Token ids (C, L) of the template filled with each name.

        Raises:
            ValueError: If a prompt does not hold the template's tokens where
                expected (e.g. it was truncated).
        """
        return self._tokenize(names, tokenizer)[0]

    def _tokenize(self, names: Sequence[str], tokenizer: Callable):
        """Token ids (C, L) and, for ``'all_but_name'``, the (C, L) index
        into :attr:`token_vectors` of each position (-1: keep the token's
        own embedding)."""
        names = tuple(names)
        key = (id(tokenizer), names)
        if self._tokens[0] == key:
            return self._tokens[1]
        tokens = tokenizer([self.init_template.format(n) for n in names])
        ctx_ids = torch.tensor(self.context_ids, dtype=tokens.dtype)
        n = self.n_ctx
        if self.learn == 'context':
            bad = [
                name for name, row in zip(names, tokens) if
                row.numel() < n + 2 or not torch.equal(row[1:n + 1], ctx_ids)
            ]
            where = None
        else:
            bad, where = [], torch.full(tokens.shape, -1, dtype=torch.long)
            row_of = {i: r for r, i in enumerate(self.learned_ids)}
            sot, eot = self._sot_eot
            template = (sot, ) + self.context_ids
            for c, (name, row) in enumerate(zip(names, tokens)):
                length = len(tokenizer.encode(name))
                expected = template + (-1, ) * length + self.suffix_ids + (
                    eot, )
                got = row[:len(expected)].tolist()
                if len(got) < len(expected) or any(
                        e != -1 and e != g for e, g in zip(expected, got)):
                    bad.append(name)
                    continue
                for pos, e in enumerate(expected):
                    if e != -1:
                        where[c, pos] = row_of[e]
        if bad:
            raise ValueError(
                f'The prompts of {bad[:5]} do not hold the tokens of '
                f'{self.init_template!r} around the name (too long for the '
                'text context?).')
        self._tokens = (key, (tokens, where))
        return tokens, where

    def encode(self, names: Sequence[str], clip_model: nn.Module,
               tokenizer: Callable) -> torch.Tensor:
        """Label embeddings with the learned vectors.

        Args:
            names (Sequence[str]): The C label names.
            clip_model (nn.Module): The (frozen) open_clip model.
            tokenizer (Callable): Its tokenizer.

        Returns:
            torch.Tensor: (C, D) float32 text features, L2-normalised if
            :attr:`normalize`; differentiable with respect to the learned
            vectors.
        """
        if isinstance(names, str) or not names:
            raise ValueError('names must be a non-empty sequence of strings.')
        tower = get_text_tower(clip_model)
        width = tower.token_embedding.weight.shape[1]
        learned = self.ctx if self.learn == 'context' else self.token_vectors
        if width != learned.shape[1]:
            raise ValueError(f'The learned vectors have width '
                             f'{learned.shape[1]} but the text tower {width}.')
        device = tower.token_embedding.weight.device
        tokens, where = self._tokenize(names, tokenizer)
        tokens = tokens.to(device)
        embeds = tower.token_embedding(tokens)
        learned = learned.to(device, embeds.dtype)
        if self.learn == 'context':
            ctx = learned.unsqueeze(0).expand(len(tokens), -1, -1)
            embeds = torch.cat(
                [embeds[:, :1], ctx, embeds[:, 1 + self.n_ctx:]], dim=1)
        else:
            where = where.to(device)
            # (C, L, W). F.embedding, not learned[index]: the backward of
            # advanced indexing accumulates repeated rows with parallel
            # atomic adds on CPU, in an order that changes from run to run;
            # embedding's backward gives every row to one thread.
            rows = F.embedding(where.clamp(min=0), learned)
            embeds = torch.where((where >= 0).unsqueeze(-1), rows, embeds)
        feats = encode_text_embeds(tower, embeds, tokens).float()
        return F.normalize(feats, dim=-1) if self.normalize else feats


def _special_ids(tokenizer: Callable) -> Tuple[int, int]:
    """The start and end token ids of an open_clip BPE tokenizer."""
    row = tokenizer(['']).flatten().tolist()
    if len(row) < 2 or row[1] == 0:
        raise ValueError('Could not find the start and end tokens of the '
                         'tokenizer.')
    return row[0], row[1]
