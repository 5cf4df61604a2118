# Copyright (c) mmovl contributors. All rights reserved.
from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn as nn
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from ..prompts import TextTower, encode_text_embeds, get_text_tower
from ..teachers.templates import resolve_templates
from .utils import VocabularyHeadClassifier, build_cls_data_preprocessor


class CLIPTextEncoder(nn.Module):
    """An open_clip model's text tower as a trainable module.

    ``forward(tokens)`` is open_clip's ``encode_text`` (token embedding,
    positional embedding, causal transformer, ``ln_final``, the EOT
    position, text projection), unnormalised, with every parameter
    trainable. It takes the tower's modules from ``clip_model`` (no copy);
    the rest of that model (the image tower) is not kept.

    Args:
        clip_model (nn.Module): An open_clip model with a causal text tower.
    """

    def __init__(self, clip_model: nn.Module) -> None:
        super().__init__()
        tower = get_text_tower(clip_model)
        self.token_embedding = tower.token_embedding
        self.positional_embedding = tower.positional_embedding
        self.transformer = tower.transformer
        self.ln_final = tower.ln_final
        self.text_projection = tower.text_projection
        self.register_buffer('attn_mask', tower.attn_mask, persistent=False)
        self.pool_type = tower.pool_type
        self.eos_id = tower.eos_id
        self.requires_grad_(True)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """(N, D) raw text features of (N, L) token ids."""
        tower = TextTower(self.token_embedding, self.positional_embedding,
                          self.transformer, self.attn_mask, self.ln_final,
                          self.text_projection, self.pool_type, self.eos_id)
        return encode_text_embeds(tower, self.token_embedding(tokens),
                                  tokens)


@MODELS.register_module()
class CPRFL(VocabularyHeadClassifier):
    """CPRFL: category-prompt refined feature learning for long-tailed
    multi-label classification (`paper <https://arxiv.org/abs/2408.08125>`_).

    A CNN backbone gives the last feature map, which a ``CPRFLHead`` turns
    into visual tokens that refine one prompt per category; the prompts are
    initialised from the CLIP text embeddings of the label names. Label
    names are data: :meth:`set_vocabulary` (called by ``VocabularyHook``
    before training and evaluation) decides what is scored.

    The label embeddings come from one of two text encoders:

    - ``train_text_encoder=True`` (the authors' code, the default): the
      CLIP text tower of ``teacher``'s weights is part of the model and
      trains with it (in the optimiser, the EMA and the checkpoints). In
      training the embeddings are recomputed through it at every step; in
      eval mode they are computed once per vocabulary and weights, and
      reused. The features are raw (not normalised), averaged over the
      templates. The teacher's image tower is not kept.
    - ``train_text_encoder=False``: a frozen ``CLIPTeacher`` gives
      L2-normalised embeddings, computed once per vocabulary and cached
      (also on disk with the teacher's ``cache_dir``).

    Either way a new vocabulary goes through the (trained) text tower, so
    the model stays an open-vocabulary classifier.

    Args:
        backbone (dict): An mmpretrain backbone returning a tuple of feature
            maps, e.g. ``ResNet`` (depth 101 in the paper).
        head (dict): A ``CPRFLHead``; ``text_channels`` defaults to the
            teacher's embedding width.
        teacher (dict): A ``CLIPTeacher``: the CLIP weights of the text
            encoder (CLIP RN50 in the authors' code).
        templates (str | Sequence[str], optional): Prompt templates of the
            label embeddings. Defaults to None (``'a photo of a {}.'``, as the
            paper).
        train_text_encoder (bool): Train the CLIP text tower with the rest
            of the model (True), or keep the frozen teacher's cached
            embeddings (False). Defaults to True.
        prompt_names (dict, optional): Names put in the prompts instead of
            the vocabulary's, e.g. ``{'dining table': 'diningtable'}`` to
            spell VOC's classes as the data set does (the authors' code).
            Names not in it are used as they are. Defaults to None.
        data_preprocessor (dict, optional): Defaults to None
            (``ClsDataPreprocessor``).
        init_cfg (dict, optional): Defaults to None.

    Examples:
        >>> model = dict(  # doctest: +SKIP
        ...     type='CPRFL',
        ...     backbone=dict(type='ResNet', depth=101),
        ...     head=dict(type='CPRFLHead', in_channels=2048),
        ...     teacher=dict(type='CLIPTeacher', model_name='RN50-quickgelu',
        ...                  checkpoint='clip_rn50.safetensors'))
        >>> model = MODELS.build(model)  # doctest: +SKIP
        >>> model.set_vocabulary(['cat', 'dog'])  # doctest: +SKIP
    """

    def __init__(self,
                 backbone: dict,
                 head: dict,
                 teacher: dict,
                 templates: Optional[Union[str, Sequence[str]]] = None,
                 train_text_encoder: bool = True,
                 prompt_names: Optional[Dict[str, str]] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        data_preprocessor = build_cls_data_preprocessor(data_preprocessor)
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.backbone = MODELS.build(backbone)
        teacher = MODELS.build(teacher)
        head = dict(head)
        head.setdefault('text_channels', teacher.embed_dim)
        self.head = MODELS.build(head)
        self.templates = resolve_templates(templates)
        self.train_text_encoder = train_text_encoder
        self.prompt_names = dict(prompt_names or {})
        if train_text_encoder:
            # the tower's modules move here; the rest of the CLIP model
            # (its image tower) goes with the teacher
            self.teacher = None
            self.text_encoder = CLIPTextEncoder(teacher.clip)
            self.tokenizer = teacher.tokenizer
        else:
            self.teacher = teacher
            self.text_encoder = None
        self.vocabulary: Optional[List[str]] = None
        self.zsl_vocabulary: Optional[List[str]] = None
        self._label_embeds: Optional[torch.Tensor] = None
        self._label_embeds_key: Optional[torch.Tensor] = None
        self._zsl_embeds: Optional[tuple] = None

    # -- vocabulary -------------------------------------------------------
    def _prompt_names(self, names: Sequence[str]) -> List[str]:
        return [self.prompt_names.get(n, n) for n in names]

    def encode_vocabulary(self,
                          names: Optional[Sequence[str]] = None
                          ) -> torch.Tensor:
        """(C, m) raw features of the prompts of ``names`` (default: the
        vocabulary) through the trainable text tower, averaged over the
        templates, with gradients (``train_text_encoder=True`` only)."""
        names = self.vocabulary if names is None else names
        prompts = [t.format(n) for n in self._prompt_names(names)
                   for t in self.templates]
        device = self.text_encoder.positional_embedding.device
        feats = self.text_encoder(self.tokenizer(prompts).to(device))
        return feats.float().view(len(names), len(self.templates),
                                  -1).mean(dim=1)

    def _eval_embeds(self, names: Sequence[str], cached) -> tuple:
        """Embeddings of ``names`` in eval mode: ``cached`` (embeddings,
        weights key) is reused while the tower's weights stay the same."""
        if self.text_encoder is None:
            if cached is None:
                embeds = self.teacher.encode_labels(
                    self._prompt_names(names), self.templates)
                cached = (embeds, None)
            device = next(self.head.parameters()).device
            return (cached[0].to(device), None)
        key = self._weights_key()
        if cached is None or not torch.equal(key, cached[1]):
            with torch.no_grad():
                cached = (self.encode_vocabulary(names), key)
        return cached

    def zsl_label_embeds(self) -> torch.Tensor:
        """(U, m) embeddings of the ZSL vocabulary, as
        :meth:`label_embeds`."""
        if self.zsl_vocabulary is None:
            raise RuntimeError('No ZSL vocabulary: call set_zsl_vocabulary()')
        if self.text_encoder is not None and self.training:
            return self.encode_vocabulary(self.zsl_vocabulary)
        self._zsl_embeds = self._eval_embeds(self.zsl_vocabulary,
                                             self._zsl_embeds)
        return self._zsl_embeds[0]

    def _weights_key(self) -> torch.Tensor:
        """What identifies the text tower's weights: the sum of each
        parameter (changed by a step, an EMA swap or a load)."""
        return torch.stack(
            [p.detach().float().sum() for p in self.text_encoder.parameters()])

    def label_embeds(self) -> torch.Tensor:
        """(C, m) embeddings of the current vocabulary: through the
        trainable tower (recomputed at each training step, cached in eval
        mode while the weights stay the same), or the frozen teacher's
        (cached)."""
        if self.vocabulary is None:
            raise RuntimeError(
                'CPRFL needs a vocabulary: call set_vocabulary() or add '
                'VocabularyHook to custom_hooks')
        if self.text_encoder is not None and self.training:
            self._label_embeds = None
            return self.encode_vocabulary()
        cached = None if self._label_embeds is None else (
            self._label_embeds, self._label_embeds_key)
        self._label_embeds, self._label_embeds_key = self._eval_embeds(
            self.vocabulary, cached)
        return self._label_embeds

    # -- forward ----------------------------------------------------------
    def extract_feat(self, inputs: torch.Tensor) -> torch.Tensor:
        """The backbone's last feature map (B, d0, h, w)."""
        feats = self.backbone(inputs)
        return feats[-1] if isinstance(feats, (tuple, list)) else feats

    def loss(self, inputs: torch.Tensor,
             data_samples: List[DataSample]) -> Dict[str, torch.Tensor]:
        return self.head.loss(
            self.extract_feat(inputs), self.label_embeds(), data_samples)

    def zsl_activation(self, scores: torch.Tensor) -> torch.Tensor:
        """The head's logits as probabilities, as its ``predict`` gives
        ``pred_score``."""
        return scores.sigmoid()
