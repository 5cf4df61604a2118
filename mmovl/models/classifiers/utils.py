# Copyright (c) mmovl contributors. All rights reserved.
"""Pieces the open-vocabulary classifiers share."""
from collections import defaultdict
from typing import List, Optional, Sequence, Union

import torch
import torch.nn as nn
from mmengine.logging import MMLogger
from mmengine.model import BaseModel
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from mmovl.utils.vocabulary import check_unique_names


def build_cls_data_preprocessor(
        cfg: Optional[Union[dict, nn.Module]]) -> nn.Module:
    """mmpretrain's ``ClsDataPreprocessor`` from a dict of its arguments,
    built from mmpretrain's registry whatever the default scope (mmengine's
    ``BaseModel`` would look in its own root registry)."""
    if isinstance(cfg, nn.Module):
        return cfg
    cfg = dict(cfg or {})
    cfg.setdefault('type', 'ClsDataPreprocessor')
    if isinstance(cfg['type'], str):
        # a string is looked up in the *default* scope's registry, which is
        # mmdet's once a detector has been built in this process
        cfg.setdefault('_scope_', 'mmpretrain')
    return MODELS.build(cfg)


def check_vocabulary(names: Sequence[str]) -> List[str]:
    """The label names as a list; an empty list or a repeated name is an
    error that says which. Names that differ only in case or spacing are
    encoded alike by CLIP's tokenizer (it lower-cases and collapses spaces),
    so the model cannot tell them apart: a warning names them."""
    names = list(names)
    if not names:
        raise ValueError('The vocabulary is empty')
    check_unique_names(names, 'names', 'The vocabulary')
    folded = defaultdict(list)
    for name in names:
        folded[' '.join(str(name).lower().split())].append(name)
    alike = [group for group in folded.values() if len(group) > 1]
    if alike:
        MMLogger.get_current_instance().warning(
            f'{len(alike)} groups of vocabulary names differ only in case or '
            'spacing, which CLIP encodes alike, so their scores are equal: '
            f'{alike[:5]}')
    return names


class VocabularyHeadClassifier(BaseModel):
    """Base of the classifiers whose head scores a vocabulary given as
    data: ``head(feats, label_embeds)``, ``head.loss(...)`` and
    ``head.predict(...)`` take the label embeddings of the current
    vocabulary. Subclasses define ``extract_feat``, ``label_embeds`` (which
    may cache per vocabulary in ``self._label_embeds``) and ``loss``.
    """

    def set_vocabulary(self, names: Sequence[str]) -> None:
        """Score these label names from now on."""
        self.vocabulary = check_vocabulary(names)
        self._label_embeds = None

    def forward(self,
                inputs: torch.Tensor,
                data_samples: Optional[List[DataSample]] = None,
                mode: str = 'tensor'):
        if mode == 'tensor':
            return self.head(self.extract_feat(inputs), self.label_embeds())
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        raise RuntimeError(f'Invalid mode "{mode}".')

    def predict(self,
                inputs: torch.Tensor,
                data_samples: Optional[List[DataSample]] = None
                ) -> List[DataSample]:
        """Scores of the current vocabulary, as ``pred_score``."""
        return self.head.predict(
            self.extract_feat(inputs), self.label_embeds(), data_samples)
