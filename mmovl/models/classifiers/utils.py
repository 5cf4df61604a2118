# Copyright (c) mmovl contributors. All rights reserved.
"""Pieces the open-vocabulary classifiers share."""
from typing import List, Optional, Sequence, Union

import torch
import torch.nn as nn
from mmengine.logging import MMLogger
from mmengine.model import BaseModel
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from mmovl.utils.vocabulary import alike_names, check_unique_names


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
    alike = alike_names(names)
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

    Zero-shot evaluation (the unseen labels scored as a vocabulary of their
    own): :meth:`set_zsl_vocabulary` (``VocabularyHook`` calls it with the
    evaluation set's ``unseen_classes``) makes :meth:`predict` score that
    vocabulary too, alone, into each sample's ``zsl_score``, which
    ``ZSLMultiLabelMetric(zsl_protocol='unseen_vocabulary')`` reads.
    Subclasses define ``zsl_label_embeds`` (which may cache in
    ``self._zsl_embeds``), and may override :meth:`_check_names` (what a
    vocabulary must be) and :meth:`zsl_activation` (the head's raw scores
    to ``zsl_score``, as its ``predict`` does for ``pred_score``).
    """

    zsl_vocabulary: Optional[List[str]] = None

    def _check_names(self, names: Sequence[str], what: str) -> List[str]:
        """``names`` as a list, checked for use as the ``what``
        (``'vocabulary'`` or ``'ZSL vocabulary'``) of this model."""
        return check_vocabulary(names)

    def set_vocabulary(self, names: Sequence[str]) -> None:
        """Score these label names from now on."""
        self.vocabulary = self._check_names(names, 'vocabulary')
        self._label_embeds = None

    def set_zsl_vocabulary(self, names: Optional[Sequence[str]]) -> None:
        """Also score these label names alone at prediction time, into each
        sample's ``zsl_score`` (the unseen labels for ZSL); None stops it.
        Not a slice of the full vocabulary's scores: the head normalises
        across, or attends over, the labels it is given."""
        self.zsl_vocabulary = None if names is None else \
            self._check_names(names, 'ZSL vocabulary')
        self._zsl_embeds = None

    def zsl_activation(self, scores: torch.Tensor) -> torch.Tensor:
        """The head's raw scores of the ZSL vocabulary as ``zsl_score``:
        as they are (override where ``head.predict`` activates them)."""
        return scores

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
        """Scores of the current vocabulary as ``pred_score`` and, with a
        ZSL vocabulary set, the scores of that vocabulary alone as
        ``zsl_score``."""
        feats = self.extract_feat(inputs)
        samples = self.head.predict(feats, self.label_embeds(), data_samples)
        if self.zsl_vocabulary is not None:
            zsl = self.zsl_activation(
                self.head(feats, self.zsl_label_embeds()).detach())
            for sample, score in zip(samples, zsl):
                sample.set_field(score, 'zsl_score', dtype=torch.Tensor)
        return samples
