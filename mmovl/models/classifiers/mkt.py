# Copyright (c) mmovl contributors. All rights reserved.
from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from mmengine.logging import MMLogger
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from .utils import VocabularyHeadClassifier, build_cls_data_preprocessor


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
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.freeze_student = freeze_student
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
        self.prompt_learner = None
        self._cached_ctx: Optional[torch.Tensor] = None
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
    def label_embeds(self) -> torch.Tensor:
        """(C, D) L2-normalised embeddings of the current vocabulary."""
        if self.vocabulary is None:
            raise RuntimeError(
                'MKT needs a vocabulary: call set_vocabulary() or add '
                'VocabularyHook to custom_hooks')
        if self.prompt_learner is not None:
            return self._prompt_label_embeds()
        if self._label_embeds is None:
            self._label_embeds = self.teacher.encode_labels(
                self.vocabulary, self.templates)
        return self._label_embeds.to(self.backbone.proj.device)

    def _prompt_label_embeds(self) -> torch.Tensor:
        teacher = self.teacher
        if self.training:  # differentiable, with the context of this step
            return self.prompt_learner.encode(self.vocabulary, teacher.clip,
                                              teacher.tokenizer)
        # Cached while the context stays the same (it may change by loading
        # weights as well as by training).
        ctx = self.prompt_learner.ctx.detach()
        cached = self._cached_ctx
        if self._label_embeds is None or cached is None or \
                cached.device != ctx.device or not torch.equal(cached, ctx):
            with torch.no_grad():
                self._label_embeds = self.prompt_learner.encode(
                    self.vocabulary, teacher.clip, teacher.tokenizer)
            self._cached_ctx = ctx.clone()
        return self._label_embeds

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
        losses, e_cls = self.head.loss(
            feats, self.label_embeds(), data_samples, return_embeds=True)
        if self.distill_weight > 0:
            target = self.teacher_embeds(inputs, data_samples)
            losses['loss_distill'] = self.distill_weight * F.l1_loss(
                e_cls, target)
        return losses
