# Copyright (c) mmovl contributors. All rights reserved.
from typing import Dict, List, Optional, Sequence, Union

import torch
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from .utils import VocabularyHeadClassifier, build_cls_data_preprocessor


@MODELS.register_module()
class CPRFL(VocabularyHeadClassifier):
    """CPRFL: category-prompt refined feature learning for long-tailed
    multi-label classification (`paper <https://arxiv.org/abs/2408.08125>`_).

    A CNN backbone gives the last feature map, which a ``CPRFLHead`` turns
    into visual tokens that refine one prompt per category; the prompts are
    initialised from the CLIP text embeddings of the label names. The CLIP
    model (a frozen ``CLIPTeacher``) is used only for those label embeddings,
    computed once per vocabulary and cached. Label names are data:
    :meth:`set_vocabulary` (called by ``VocabularyHook`` before training and
    evaluation) decides what is scored.

    Args:
        backbone (dict): An mmpretrain backbone returning a tuple of feature
            maps, e.g. ``ResNet`` (depth 101 in the paper).
        head (dict): A ``CPRFLHead``; ``text_channels`` defaults to the
            teacher's embedding width.
        teacher (dict): A ``CLIPTeacher``.
        templates (str | Sequence[str], optional): Prompt templates of the
            label embeddings. Defaults to None (``'a photo of a {}.'``, as the
            paper).
        data_preprocessor (dict, optional): Defaults to None
            (``ClsDataPreprocessor``).
        init_cfg (dict, optional): Defaults to None.

    Examples:
        >>> model = dict(  # doctest: +SKIP
        ...     type='CPRFL',
        ...     backbone=dict(type='ResNet', depth=101),
        ...     head=dict(type='CPRFLHead', in_channels=2048),
        ...     teacher=dict(type='CLIPTeacher', model_name='ViT-B-16',
        ...                  checkpoint='clip.safetensors'))
        >>> model = MODELS.build(model)  # doctest: +SKIP
        >>> model.set_vocabulary(['cat', 'dog'])  # doctest: +SKIP
    """

    def __init__(self,
                 backbone: dict,
                 head: dict,
                 teacher: dict,
                 templates: Optional[Union[str, Sequence[str]]] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        data_preprocessor = build_cls_data_preprocessor(data_preprocessor)
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.backbone = MODELS.build(backbone)
        self.teacher = MODELS.build(teacher)
        head = dict(head)
        head.setdefault('text_channels', self.teacher.embed_dim)
        self.head = MODELS.build(head)
        self.templates = templates
        self.vocabulary: Optional[List[str]] = None
        self._label_embeds: Optional[torch.Tensor] = None

    # -- vocabulary -------------------------------------------------------
    def label_embeds(self) -> torch.Tensor:
        """(C, m) CLIP embeddings of the current vocabulary, cached."""
        if self.vocabulary is None:
            raise RuntimeError(
                'CPRFL needs a vocabulary: call set_vocabulary() or add '
                'VocabularyHook to custom_hooks')
        if self._label_embeds is None:
            self._label_embeds = self.teacher.encode_labels(
                self.vocabulary, self.templates)
        device = next(self.head.parameters()).device
        if self._label_embeds.device != device:
            self._label_embeds = self._label_embeds.to(device)
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
