# Copyright (c) mmovl contributors. All rights reserved.
from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from mmengine.logging import MMLogger
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from ..heads.utils import multi_hot_targets
from .utils import (VocabularyHeadClassifier, build_cls_data_preprocessor,
                    check_vocabulary)

_DISTILL_IMAGES = ('with_positive', 'all')


@MODELS.register_module()
class MKT(VocabularyHeadClassifier):
    """MKT: open-vocabulary multi-label classification by multi-modal
    knowledge transfer.

    A ViT student initialised from the CLIP image encoder feeds a two-stream
    head (global CLS + top-k local patches) that scores images against the
    CLIP label embeddings of the current vocabulary; it is trained with the
    rank loss on the seen labels plus an L1 distillation of its projected
    CLS embedding toward the frozen CLIP teacher's image embedding. Label
    names are data: :meth:`set_vocabulary` (called by ``VocabularyHook`` with
    the training set's seen labels before training and the test set's labels
    before evaluation) decides what is scored.

    As in the official code, the distillation compares the projected CLS
    feature with the teacher's image feature in the head's space: raw CLIP
    features with ``TwoStreamHead(normalize_embeds=False)`` (the code's
    choice, mmovl's configs), unit vectors otherwise.

    The teacher's image embeddings come from the teacher online, or from a
    precomputed cache (``tools/misc/cache_teacher_embeds.py`` and the
    ``LoadTeacherEmbedding`` transform): when every data sample carries a
    ``teacher_embed``, the teacher is not run.

    As in the official code, the images without a positive label are left
    out of both losses (``distill_images='with_positive'``): the rank loss
    drops them (``RankLoss(drop_no_positive=True)``) and so does the
    distillation. ``distill_images='all'`` distils every image.

    Zero-shot evaluation as the official code: besides the vocabulary of all
    labels (``pred_score``, GZSL), :meth:`set_zsl_vocabulary` (called by
    ``VocabularyHook`` with the evaluation set's ``unseen_classes``) gives a
    second vocabulary that the images are scored with as well, alone: its
    scores, normalised across those labels only, go into each sample's
    ``zsl_score``, which ``ZSLMultiLabelMetric`` reads with
    ``zsl_protocol='unseen_vocabulary'``.
    Slicing the unseen columns out of the all-label scores would not give
    the same numbers, since each stream is normalised across the vocabulary.

    Stage 2 (prompt tuning) gives a ``prompt_learner``
    (:class:`~mmovl.models.prompts.MKTPromptLearner`): the label embeddings
    then come from its learnable context run through the teacher's frozen
    CLIP text tower, recomputed at every training step (the context
    changes) and cached in eval mode while the context stays the same.
    With ``freeze_student=True`` the backbone and head are frozen (and kept
    in eval mode), so the rank loss trains the context only.

    Args:
        backbone (dict): The student, e.g. ``OpenCLIPViT`` from the teacher's
            checkpoint.
        head (dict): A ``TwoStreamHead``; ``in_channels`` and
            ``out_channels`` default to the backbone's width and projection.
        teacher (dict): A ``CLIPTeacher``.
        distill_weight (float): Weight of the distillation loss (1 in the
            official code). 0 disables it (stage 2). Defaults to 1.0.
        templates (str | Sequence[str], optional): Prompt templates of the
            label embeddings, without a prompt learner. Defaults to None
            (``'a photo of a {}.'``).
        prompt_learner (dict, optional): An ``MKTPromptLearner`` giving the
            label embeddings (stage 2); built with the teacher's CLIP model
            and tokenizer. Defaults to None (the teacher's fixed templates).
        freeze_student (bool): Freeze the backbone and the head, so that only
            the prompt learner trains (stage 2); needs ``prompt_learner`` and
            ``distill_weight=0``. Defaults to False.
        distill_images (str): Which images the distillation averages over:
            ``'with_positive'`` (those with a positive training label, the
            images the rank loss keeps; the official code) or ``'all'``.
            Defaults to ``'with_positive'``.
        init_head_from_backbone (bool): Start the head's projection from
            CLIP's visual projection, as the official code. Defaults to True.
        data_preprocessor (dict, optional): Defaults to None
            (``ClsDataPreprocessor``); use the teacher's mean / std.
        init_cfg (dict, optional): Defaults to None.

    Examples:
        >>> # stage 2 as a delta on a stage-1 config (see
        >>> # configs/mkt/mkt_toy_vit_p8_prompt_5e_toy.py)
        >>> model.update(  # doctest: +SKIP
        ...     prompt_learner=dict(type='MKTPromptLearner'),
        ...     freeze_student=True, distill_weight=0.0)
    """

    def __init__(self,
                 backbone: dict,
                 head: dict,
                 teacher: dict,
                 distill_weight: float = 1.0,
                 templates: Optional[Union[str, Sequence[str]]] = None,
                 prompt_learner: Optional[dict] = None,
                 freeze_student: bool = False,
                 init_head_from_backbone: bool = True,
                 distill_images: str = 'with_positive',
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        data_preprocessor = build_cls_data_preprocessor(data_preprocessor)
        if freeze_student and prompt_learner is None:
            raise ValueError('freeze_student=True leaves nothing to train '
                             'without a prompt_learner.')
        if freeze_student and distill_weight > 0:
            raise ValueError('freeze_student=True: the distillation loss has '
                             'nothing to train; set distill_weight=0.')
        if prompt_learner is not None and templates is not None:
            raise ValueError('The prompt learner makes the label embeddings; '
                             'templates would be ignored.')
        if distill_images not in _DISTILL_IMAGES:
            raise ValueError(f'distill_images must be one of '
                             f'{_DISTILL_IMAGES}, got {distill_images!r}.')
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.freeze_student = freeze_student
        self.distill_images = distill_images
        self.backbone = MODELS.build(backbone)
        proj = self.backbone.proj
        head = dict(head)
        head.setdefault('in_channels', proj.shape[0])
        head.setdefault('out_channels', proj.shape[1])
        self.head = MODELS.build(head)
        if init_head_from_backbone:
            self.head.init_proj(proj.detach())
        self.teacher = MODELS.build(teacher)
        if self.teacher.embed_dim != proj.shape[1]:
            raise ValueError(
                f'The student projects to {proj.shape[1]} dimensions but the '
                f'teacher embeds in {self.teacher.embed_dim}')
        self.distill_weight = distill_weight
        self.templates = templates
        self.vocabulary: Optional[List[str]] = None
        self._label_embeds: Optional[torch.Tensor] = None
        self.zsl_vocabulary: Optional[List[str]] = None
        self.prompt_learner = None
        # Label embeddings of the prompt learner in eval mode, per
        # vocabulary: (names, context they were encoded with, embeddings).
        self._prompt_cache: Dict[str, tuple] = {}
        if prompt_learner is not None:
            self.prompt_learner = MODELS.build(
                prompt_learner,
                default_args=dict(
                    clip_model=self.teacher.clip,
                    tokenizer=self.teacher.tokenizer))
        if freeze_student:
            self.backbone.requires_grad_(False)
            self.head.requires_grad_(False)
            self.backbone.eval()
            self.head.eval()
            MMLogger.get_current_instance().info(
                'MKT: student frozen; training the prompt context only.')

    def train(self, mode: bool = True) -> 'MKT':
        """Set the mode; a frozen student stays in eval mode."""
        super().train(mode)
        if self.freeze_student:
            self.backbone.eval()
            self.head.eval()
        return self

    # -- vocabulary -------------------------------------------------------
    def _check_rankable(self, names: List[str], what: str) -> None:
        if len(names) == 1 and self.head.combine == 'normalized_mean':
            raise ValueError(
                f'A {what} of a single label ({names[0]!r}) cannot be scored '
                'by MKT: its two-stream scores are normalised across the '
                'labels, so one label always scores 1, 0 or -1. Give at '
                'least two labels.')

    def _check_names(self, names: Sequence[str], what: str) -> List[str]:
        """A vocabulary, or ZSL vocabulary, of at least two names: the
        scores are normalised across them."""
        names = check_vocabulary(names)
        self._check_rankable(names, what)
        return names

    def label_embeds(self) -> torch.Tensor:
        """(C, D) embeddings of the current vocabulary (L2-normalised, unless
        a prompt learner with ``normalize=False`` makes them)."""
        if self.vocabulary is None:
            raise RuntimeError(
                'MKT needs a vocabulary: call set_vocabulary() or add '
                'VocabularyHook to custom_hooks')
        if self.prompt_learner is not None:
            return self._prompt_label_embeds(self.vocabulary, 'vocabulary')
        if self._label_embeds is None:
            self._label_embeds = self.teacher.encode_labels(
                self.vocabulary, self.templates)
        return self._label_embeds.to(self.backbone.proj.device)

    def zsl_label_embeds(self) -> torch.Tensor:
        """(U, D) embeddings of the ZSL vocabulary, see
        :meth:`set_zsl_vocabulary`."""
        if self.zsl_vocabulary is None:
            raise RuntimeError('No ZSL vocabulary: call set_zsl_vocabulary()')
        if self.prompt_learner is not None:
            return self._prompt_label_embeds(self.zsl_vocabulary, 'zsl')
        # The teacher keeps them in memory per vocabulary.
        return self.teacher.encode_labels(
            self.zsl_vocabulary,
            self.templates).to(self.backbone.proj.device)

    def _prompt_label_embeds(self, names: List[str],
                             slot: str) -> torch.Tensor:
        teacher = self.teacher
        if self.training:  # differentiable, with the context of this step
            return self.prompt_learner.encode(names, teacher.clip,
                                              teacher.tokenizer)
        # Cached while the learned vectors stay the same (they may change by
        # loading weights as well as by training).
        ctx = self.prompt_learner.learned_state()
        cached = self._prompt_cache.get(slot)
        if cached is None or cached[0] != tuple(names) or \
                cached[1].device != ctx.device or \
                not torch.equal(cached[1], ctx):
            with torch.no_grad():
                embeds = self.prompt_learner.encode(names, teacher.clip,
                                                    teacher.tokenizer)
            cached = self._prompt_cache[slot] = (tuple(names), ctx.clone(),
                                                 embeds)
        return cached[2]

    def get_layer_depth(self, param_name: str):
        """Layer depth of a parameter for layer-wise lr decay (the head is
        the last depth)."""
        return self.backbone.get_layer_depth(param_name, 'backbone.')

    # -- forward ----------------------------------------------------------
    def extract_feat(self, inputs: torch.Tensor):
        return self.backbone(inputs)[-1]

    def teacher_embeds(self, inputs: torch.Tensor,
                       data_samples: List[DataSample]) -> torch.Tensor:
        """The teacher's image embeddings, in the space of the head's
        (normalised if the head normalises): cached ones when every sample
        has one, else computed by the teacher now."""
        normalize = getattr(self.head, 'normalize_embeds', True)
        if data_samples and all('teacher_embed' in s
                                for s in data_samples):
            cached = torch.stack([
                torch.as_tensor(s.teacher_embed) for s in data_samples
            ]).to(inputs.device, torch.float32)
            return F.normalize(cached, dim=-1) if normalize else cached
        size = self.teacher.image_size
        if size is not None and tuple(inputs.shape[-2:]) != tuple(size):
            inputs = F.interpolate(
                inputs, size=size, mode='bicubic', align_corners=False)
        return self.teacher.encode_image(inputs, normalize=normalize)

    def loss(self, inputs: torch.Tensor,
             data_samples: List[DataSample]) -> Dict[str, torch.Tensor]:
        # A frozen student needs no activations kept for backward.
        with torch.set_grad_enabled(torch.is_grad_enabled()
                                    and not self.freeze_student):
            feats = self.extract_feat(inputs)
        label_embeds = self.label_embeds()
        losses, e_cls = self.head.loss(
            feats, label_embeds, data_samples, return_embeds=True)
        if self.distill_weight > 0:
            if self.distill_images == 'with_positive':
                target = multi_hot_targets(data_samples,
                                           label_embeds.shape[0],
                                           inputs.device)
                keep = (target == 1).any(dim=1)
            else:
                keep = torch.ones(len(inputs), dtype=torch.bool,
                                  device=inputs.device)
            if keep.any():
                kept = [s for s, k in zip(data_samples, keep.tolist()) if k]
                teacher = self.teacher_embeds(inputs[keep], kept)
                distill = F.l1_loss(e_cls[keep], teacher)
            else:  # no image to distil; keep the graph connected for DDP
                distill = e_cls.sum() * 0
            losses['loss_distill'] = self.distill_weight * distill
        return losses
