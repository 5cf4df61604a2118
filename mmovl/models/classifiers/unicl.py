# Copyright (c) mmovl contributors. All rights reserved.
from typing import Dict, List, Optional, Sequence, Union

import open_clip
import torch
import torch.nn.functional as F
from mmengine.model import BaseModel
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from ..teachers.templates import resolve_templates
from ..utils.open_clip_utils import register_open_clip_config
from .utils import build_cls_data_preprocessor, check_vocabulary


@MODELS.register_module()
class UniCL(BaseModel):
    """Unified contrastive learning of an image and a text tower.

    Trains an open_clip architecture (built from its name, randomly
    initialised) on image-text-label triplets with :class:`UniCLLoss`:
    images sharing a label are positives for each other's texts. The
    temperature is learnable and kept by the open_clip model as
    ``logit_scale`` (its log), as CLIP does. Exported weights
    (``tools/model_converters/unicl_to_open_clip.py``) load into
    :class:`CLIPTeacher` like any open_clip checkpoint.

    At test time the model is a zero-shot classifier: each image is scored
    against the prompt embeddings of a vocabulary, set with
    :meth:`set_vocabulary` (``VocabularyHook`` sets the evaluation data
    set's classes before each validation / test).

    Args:
        model_name (str): open_clip architecture name. Defaults to
            ``'mmovl-toy-vit'``.
        model_cfg (dict, optional): A custom architecture in open_clip's JSON
            format, registered as ``model_name``. Defaults to None.
        loss (dict): The contrastive loss. Defaults to
            ``dict(type='UniCLLoss')``.
        templates (str | Sequence[str], optional): Prompt templates of the
            zero-shot classifier (see ``resolve_templates``). Defaults to
            None (``'a photo of a {}.'``).
        max_logit_scale (float): Clamp of the learned scale, as CLIP.
            Defaults to 100.
        label_aware (bool): Use the labels to make positives (UniCL). False
            gives every sample its own label, i.e. CLIP's loss on the same
            data, for ablations. Defaults to True.
        data_preprocessor (dict, optional): Defaults to None
            (``ClsDataPreprocessor``).
        init_cfg (dict, optional): Defaults to None.

    Examples:
        >>> import torch, mmovl
        >>> from mmpretrain.registry import MODELS
        >>> model = MODELS.build(dict(type='UniCL'))
        >>> model.set_vocabulary(['red circle', 'blue square'])
        >>> model.predict(torch.randn(2, 3, 64, 64))[0].pred_score.shape
        torch.Size([2])
    """

    def __init__(self,
                 model_name: str = 'mmovl-toy-vit',
                 model_cfg: Optional[dict] = None,
                 loss: dict = dict(type='UniCLLoss'),
                 templates: Optional[Union[str, Sequence[str]]] = None,
                 max_logit_scale: float = 100.0,
                 label_aware: bool = True,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        data_preprocessor = build_cls_data_preprocessor(data_preprocessor)
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if model_cfg is not None:
            register_open_clip_config(model_name, model_cfg)
        self.model_name = model_name
        self.clip = open_clip.create_model(
            model_name, pretrained_image=False, pretrained_text=False)
        self.tokenizer = open_clip.get_tokenizer(model_name)
        self.loss_module = MODELS.build(loss)
        self.templates = resolve_templates(templates)
        self.max_logit_scale = max_logit_scale
        self.label_aware = label_aware
        self.vocabulary: Optional[List[str]] = None
        self._prototypes: Optional[torch.Tensor] = None

    @property
    def logit_scale(self) -> torch.Tensor:
        """The multiplier of the cosine similarities, exp of the learned
        log-scale, clamped as CLIP does."""
        return self.clip.logit_scale.exp().clamp(max=self.max_logit_scale)

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """L2-normalised image embeddings (B, D)."""
        return F.normalize(self.clip.encode_image(images), dim=-1)

    def encode_text(self, texts: Sequence[str]) -> torch.Tensor:
        """L2-normalised text embeddings (N, D) of raw strings."""
        device = self.clip.logit_scale.device
        tokens = self.tokenizer(list(texts)).to(device)
        return F.normalize(self.clip.encode_text(tokens), dim=-1)

    def extract_feat(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.encode_image(inputs)

    def forward(self,
                inputs: torch.Tensor,
                data_samples: Optional[List[DataSample]] = None,
                mode: str = 'tensor'):
        if mode == 'tensor':
            return self.encode_image(inputs)
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        raise RuntimeError(f'Invalid mode "{mode}".')

    def loss(self, inputs: torch.Tensor,
             data_samples: List[DataSample]) -> Dict[str, torch.Tensor]:
        """The UniCL loss of a batch of triplets, as ``loss_contrastive``
        (and the learned ``logit_scale``, logged).

        Each data sample carries ``text`` (a caption or a prompt) and
        ``gt_label`` (one UniCL label).
        """
        texts = [s.text for s in data_samples]
        if self.label_aware:
            labels = torch.cat(
                [s.gt_label.view(-1)[:1] for s in data_samples])
        else:
            # The dataset index is unique across ranks: CLIP's targets.
            labels = torch.tensor([s.sample_idx for s in data_samples])
        image_embeds = self.encode_image(inputs)
        text_embeds = self.encode_text(texts)
        scale = self.logit_scale
        loss = self.loss_module(image_embeds, text_embeds,
                                labels.to(inputs.device), scale)
        return dict(loss_contrastive=loss, logit_scale=scale.detach())

    @torch.no_grad()
    def set_vocabulary(self, names: Sequence[str]) -> None:
        """Set the label names that :meth:`predict` scores."""
        self.vocabulary = check_vocabulary(names)
        self._prototypes = None  # encoded lazily, with the current weights

    @torch.no_grad()
    def _label_prototypes(self) -> torch.Tensor:
        if self.vocabulary is None:
            raise RuntimeError(
                'UniCL.predict needs a vocabulary: call set_vocabulary() or '
                'add VocabularyHook to custom_hooks')
        if self._prototypes is None:
            per_template = torch.stack([
                self.encode_text([t.format(n) for n in self.vocabulary])
                for t in self.templates
            ])
            self._prototypes = F.normalize(per_template.mean(0), dim=-1)
        return self._prototypes

    def train(self, mode: bool = True):
        # New weights make cached prototypes stale.
        self._prototypes = None
        return super().train(mode)

    @torch.no_grad()
    def predict(self,
                inputs: torch.Tensor,
                data_samples: Optional[List[DataSample]] = None
                ) -> List[DataSample]:
        """Zero-shot scores: cosine similarity to each vocabulary label."""
        scores = self.encode_image(inputs) @ self._label_prototypes().t()
        if data_samples is None:
            data_samples = [DataSample() for _ in range(scores.size(0))]
        for sample, score in zip(data_samples, scores):
            sample.set_pred_score(score)
        return data_samples
