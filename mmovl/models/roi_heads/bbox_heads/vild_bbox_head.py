# Copyright (c) mmovl contributors. All rights reserved.
import math
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmengine.config import ConfigDict
from mmengine.structures import InstanceData
from mmdet.models.layers import multiclass_nms
from mmdet.models.roi_heads.bbox_heads import ConvFCBBoxHead
from mmdet.models.utils import empty_instances
from mmdet.registry import MODELS
from mmdet.structures.bbox import get_box_tensor, scale_boxes
from torch import Tensor

IMAGE_BRANCHES = (None, 'shared', 'projection', 'tower')
SCORE_MODES = ('text', 'image', 'ensemble')


@MODELS.register_module()
class ViLDBBoxHead(ConvFCBBoxHead):
    r"""The box head of `ViLD <https://arxiv.org/abs/2104.13921>`_.

    mmdet's ConvFC box head with class-agnostic box regression whose
    classifier is replaced by region embeddings: the classification
    branch's features are projected to CLIP's dimension D and L2-normalised
    (``r``), then scored against the L2-normalised CLIP text embeddings
    ``z_c`` of the current vocabulary (set by
    :meth:`set_class_embeddings`, normally through ``ViLD.set_vocabulary``)
    and a learned, normalised background embedding ``e_bg``:

    .. math::
        \text{logits} = [\langle r, z_1\rangle, \dots, \langle r, z_C\rangle,
        \langle r, e_{bg}\rangle] / T

    **Background convention:** mmdet's, not the paper's column order. The
    background is the *last* column and background RoIs carry the label
    ``C`` (``num_classes``), so mmdet's target assignment, softmax
    cross-entropy, accuracy and NMS are reused unchanged. Softmax
    cross-entropy does not depend on the column order, so this is the
    paper's ViLD-text loss with its background column moved from first to
    last.

    The image branch (``image_branch``) gives the embeddings distilled
    toward CLIP's image embeddings (see :class:`ViLDImageLoss`):
    ``'shared'`` distils ``r`` itself (ViLD); ``'projection'`` a second
    projection of the same features; ``'tower'`` a separate copy of the
    shared convs / fcs with its own projection (ViLD-ensemble, as the
    authors' code); None leaves the text branch alone (ViLD-text).

    At inference (eval mode) :meth:`forward` returns class probabilities,
    not logits, with the background last, for ``score_mode``:

    - ``'text'``: softmax of the text logits above.
    - ``'image'``: softmax of ``<r_image, z_c> / T`` over the vocabulary only
      (the image branch never learns a background), background column 0.
    - ``'ensemble'``: per class, :math:`p_{text}^{\lambda}
      p_{image}^{1-\lambda}` for base categories and :math:`p_{text}^{1-
      \lambda} p_{image}^{\lambda}` for novel ones; the background column is
      the text branch's.

    Args:
        embed_dim (int): D, CLIP's embedding dimension; ``ViLD`` sets it from
            its teacher. Defaults to 512.
        temperature (float): T. Defaults to 0.01.
        image_branch (str, optional): None, ``'shared'``, ``'projection'``
            or ``'tower'`` (see above). Defaults to ``'projection'``.
        score_mode (str, optional): ``'text'``, ``'image'`` or
            ``'ensemble'``; may be changed at test time. Defaults to None
            (``'ensemble'`` with a separate image branch, else ``'text'``).
        ensemble_lambda (float): :math:`\lambda`. Defaults to 2/3.
        norm_fcs (bool): Also normalise after every shared fc (and the image
            tower's), before its ReLU, with ``norm_cfg`` (``BN`` becomes
            ``BN1d``): the authors' box head has BN after each of its 4
            convs and 2 fcs. mmdet's ConvFC head normalises its convs only.
            Defaults to False.
        num_zero_logits (int): Extra classes with logit 0 in the training
            softmax. The authors' code keeps LVIS's 337 rare (novel) classes
            in it with their logits masked to 0 (``mask_rare``); they add
            ``num_zero_logits`` to its denominator, as one column of logit
            ``log(num_zero_logits)`` after the background, which no RoI is
            labelled with. Inference is unchanged. Defaults to 0.
        loss_image (dict): The image-branch loss. Defaults to
            ``dict(type='ViLDImageLoss', loss_weight=0.5)``.
        num_shared_convs (int): Shared convs (4 in the authors' code).
            Defaults to 0.
        num_shared_fcs (int): Shared fcs. Defaults to 2 (mmdet's
            ``Shared2FCBBoxHead``).
        reg_class_agnostic (bool): Must be True: the vocabulary changes, so
            box regression cannot be per class. Defaults to True.
        init_cfg (dict, optional): Defaults to None (mmdet's ConvFC
            initialisation, with the projections and the image tower's fcs
            initialised like its fcs, and the tower's convs and norms like
            its convs: by ``ConvModule`` itself).
        **kwargs: The other arguments of mmdet's ``ConvFCBBoxHead`` /
            ``BBoxHead`` (``in_channels``, ``fc_out_channels``,
            ``num_classes`` (only the size of empty results before a
            vocabulary is set), ``bbox_coder``, ``loss_cls``, ...).

    Examples:
        >>> import torch
        >>> import torch.nn.functional as F
        >>> head = ViLDBBoxHead(in_channels=8, fc_out_channels=16,
        ...                     roi_feat_size=7, embed_dim=4)
        >>> head.set_class_embeddings(F.normalize(torch.randn(3, 4), dim=1))
        >>> cls_score, bbox_pred = head(torch.randn(5, 8, 7, 7))
        >>> cls_score.shape, bbox_pred.shape  # 3 classes + background
        (torch.Size([5, 4]), torch.Size([5, 4]))
    """

    def __init__(self,
                 embed_dim: int = 512,
                 temperature: float = 0.01,
                 image_branch: Optional[str] = 'projection',
                 score_mode: Optional[str] = None,
                 ensemble_lambda: float = 2 / 3,
                 norm_fcs: bool = False,
                 num_zero_logits: int = 0,
                 loss_image: dict = dict(type='ViLDImageLoss',
                                         loss_weight=0.5),
                 num_shared_convs: int = 0,
                 num_shared_fcs: int = 2,
                 reg_class_agnostic: bool = True,
                 init_cfg: Optional[dict] = None,
                 **kwargs) -> None:
        if not reg_class_agnostic:
            raise ValueError('ViLDBBoxHead needs reg_class_agnostic=True: '
                             'its vocabulary is not fixed.')
        if image_branch not in IMAGE_BRANCHES:
            raise ValueError(f'image_branch must be one of {IMAGE_BRANCHES}, '
                             f'got {image_branch!r}.')
        if temperature <= 0:
            raise ValueError(f'temperature must be > 0, got {temperature}.')
        if not 0 <= ensemble_lambda <= 1:
            raise ValueError('ensemble_lambda must be in [0, 1], got '
                             f'{ensemble_lambda}.')
        if num_zero_logits < 0:
            raise ValueError('num_zero_logits must be >= 0, got '
                             f'{num_zero_logits}.')
        super().__init__(
            num_shared_convs=num_shared_convs,
            num_shared_fcs=num_shared_fcs,
            reg_class_agnostic=True,
            init_cfg=init_cfg,
            **kwargs)
        self.embed_dim = embed_dim
        self.temperature = temperature
        self.image_branch = image_branch
        self.ensemble_lambda = ensemble_lambda
        self.norm_fcs = norm_fcs
        self.num_zero_logits = num_zero_logits
        if norm_fcs and self.norm_cfg is None:
            raise ValueError('norm_fcs=True needs a norm_cfg.')
        if norm_fcs and (self.num_cls_fcs or self.num_reg_fcs):
            raise ValueError('norm_fcs normalises the shared fcs only; this '
                             'head has separate cls / reg fcs.')
        self.shared_fc_norms = self._fc_norms(self.num_shared_fcs)
        self.score_mode = score_mode or (
            'ensemble' if image_branch in ('projection', 'tower') else 'text')

        # The classifier is the vocabulary's text embeddings: with fc_cls an
        # identity, ConvFCBBoxHead.forward yields the classification
        # branch's features, which are projected to CLIP's space instead.
        self.fc_cls = nn.Identity()
        self.text_proj = nn.Linear(self.cls_last_dim, embed_dim)
        # Direction only matters (it is normalised); N(0, 0.01) as the
        # authors' background classifier.
        self.bg_embed = nn.Parameter(torch.randn(embed_dim) * 0.01)
        self.register_buffer('class_embeds', None, persistent=False)
        self.register_buffer('novel_mask', None, persistent=False)

        proj_names = ['text_proj']
        if image_branch == 'tower':
            self.image_convs, self.image_fcs, image_dim = \
                self._add_conv_fc_branch(self.num_shared_convs,
                                         self.num_shared_fcs,
                                         self.in_channels, True)
            if self.num_shared_fcs == 0 and not self.with_avg_pool:
                image_dim *= self.roi_feat_area
            self.image_fc_norms = self._fc_norms(self.num_shared_fcs)
            self.image_proj = nn.Linear(image_dim, embed_dim)
            # As mmdet initialises the shared branch: Xavier for the fcs;
            # the convs are ConvModules that initialise themselves (Kaiming,
            # norms to weight 1 / bias 0) and get no override, which would
            # reach their norms' 1-D weights too.
            proj_names += ['image_fcs', 'image_proj']
        elif image_branch == 'projection':
            self.image_proj = nn.Linear(self.cls_last_dim, embed_dim)
            proj_names.append('image_proj')
        self.loss_image = MODELS.build(loss_image) \
            if image_branch is not None else None

        if init_cfg is None:
            self.init_cfg = [
                c for c in self.init_cfg
                if not _overrides(c, 'fc_cls')
            ] + [
                dict(
                    type='Xavier',
                    distribution='uniform',
                    override=[dict(name=n) for n in proj_names])
            ]

    def _fc_norms(self, num: int) -> Optional[nn.ModuleList]:
        """One norm per fc (``norm_cfg`` in its 1-D form), if ``norm_fcs``."""
        if not self.norm_fcs or num == 0:
            return None
        cfg = dict(self.norm_cfg)
        if cfg['type'] in ('BN', 'BN2d'):
            cfg['type'] = 'BN1d'
        return nn.ModuleList(
            build_norm_layer(cfg, self.fc_out_channels)[1]
            for _ in range(num))

    def _shared(self, x: Tensor, convs, fcs,
                norms: Optional[nn.ModuleList]) -> Tensor:
        """Convs, then fcs each followed by its norm (if any) and ReLU."""
        for conv in convs:
            x = conv(x)
        if len(fcs) > 0:
            if self.with_avg_pool:
                x = self.avg_pool(x)
            x = x.flatten(1)
            for i, fc in enumerate(fcs):
                x = fc(x)
                if norms is not None:
                    x = norms[i](x)
                x = self.relu(x)
        return x

    def _convfc_forward(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        """ConvFCBBoxHead.forward with the fc norms: the classification
        branch's features and the box deltas."""
        x = self._shared(x, self.shared_convs, self.shared_fcs,
                         self.shared_fc_norms)
        x_cls = self._shared(x, self.cls_convs, self.cls_fcs, None)
        x_reg = self._shared(x, self.reg_convs, self.reg_fcs, None)
        x_cls = x_cls.flatten(1) if x_cls.dim() > 2 else x_cls
        x_reg = x_reg.flatten(1) if x_reg.dim() > 2 else x_reg
        return x_cls, self.fc_reg(x_reg)

    @property
    def score_mode(self) -> str:
        """str: How :meth:`forward` scores at inference."""
        return self._score_mode

    @score_mode.setter
    def score_mode(self, mode: str) -> None:
        if mode not in SCORE_MODES:
            raise ValueError(
                f'score_mode must be one of {SCORE_MODES}, got {mode!r}.')
        if mode != 'text' and self.image_branch is None:
            raise ValueError(f'score_mode={mode!r} needs an image branch; '
                             'this head has image_branch=None.')
        self._score_mode = mode

    # -- vocabulary -------------------------------------------------------
    def set_class_embeddings(self,
                             embeds: Tensor,
                             novel_mask: Optional[Tensor] = None) -> None:
        """Set the vocabulary's text embeddings (what the head scores).

        Args:
            embeds (Tensor): (C, D) text embeddings; normalised here.
            novel_mask (Tensor, optional): (C, ) booleans, True for novel
                categories (used by the ensemble). Defaults to None (all
                base).
        """
        if embeds.dim() != 2 or embeds.shape[1] != self.embed_dim \
                or embeds.shape[0] == 0:
            raise ValueError(
                f'Expected (C, {self.embed_dim}) class embeddings with C > 0, '
                f'got {tuple(embeds.shape)}.')
        num_classes = embeds.shape[0]
        if novel_mask is None:
            novel_mask = torch.zeros(num_classes, dtype=torch.bool)
        novel_mask = torch.as_tensor(novel_mask, dtype=torch.bool)
        if novel_mask.shape != (num_classes, ):
            raise ValueError(f'novel_mask must have shape ({num_classes},), '
                             f'got {tuple(novel_mask.shape)}.')
        device = self.bg_embed.device
        self.class_embeds = F.normalize(
            embeds.detach().to(device, torch.float32), dim=-1)
        self.novel_mask = novel_mask.to(device)
        # mmdet's convention: labels 0..C-1 are classes, C is background.
        self.num_classes = num_classes

    def _class_embeds(self) -> Tensor:
        if self.class_embeds is None:
            raise RuntimeError(
                'ViLDBBoxHead has no vocabulary: call ViLD.set_vocabulary() '
                '(or add DetVocabularyHook to custom_hooks).')
        return self.class_embeds

    # -- forward ----------------------------------------------------------
    def _image_tower(self, x: Tensor) -> Tensor:
        """The ViLD-ensemble image branch's own convs and fcs."""
        x = self._shared(x, self.image_convs, self.image_fcs,
                         self.image_fc_norms)
        return x.flatten(1)

    def forward_embeds(
        self,
        x: Tensor,
        with_image: bool = True
    ) -> Tuple[Tensor, Optional[Tensor], Tensor]:
        """Region embeddings and box deltas of RoI features.

        Args:
            x (Tensor): (N, C_in, S, S) RoI features.
            with_image (bool): Also compute the image branch's embeddings.
                Defaults to True.

        Returns:
            tuple: ``text_embeds`` (N, D) and ``image_embeds`` (N, D) or
            None (no image branch, or ``with_image=False``), both
            normalised, and ``bbox_pred`` (N, 4).
        """
        feats, bbox_pred = self._convfc_forward(x)
        text_embeds = F.normalize(self.text_proj(feats), dim=-1)
        image_embeds = None
        if with_image and self.image_branch == 'shared':
            image_embeds = text_embeds
        elif with_image and self.image_branch == 'projection':
            image_embeds = F.normalize(self.image_proj(feats), dim=-1)
        elif with_image and self.image_branch == 'tower':
            image_embeds = F.normalize(
                self.image_proj(self._image_tower(x)), dim=-1)
        return text_embeds, image_embeds, bbox_pred

    def image_embeds(self, x: Tensor) -> Tensor:
        """(N, D) normalised image-branch embeddings of RoI features."""
        if self.image_branch is None:
            raise RuntimeError('This head has no image branch.')
        if self.image_branch == 'tower':
            return F.normalize(self.image_proj(self._image_tower(x)), dim=-1)
        return self.forward_embeds(x)[1]

    def text_logits(self, text_embeds: Tensor) -> Tensor:
        """(N, C + 1) logits ``[<r, z_1..C>, <r, e_bg>] / T``."""
        bg = F.normalize(self.bg_embed, dim=0)
        weight = torch.cat([self._class_embeds(), bg[None]])
        return text_embeds @ weight.t() / self.temperature

    def train_logits(self, text_embeds: Tensor) -> Tensor:
        """The training softmax's logits: :meth:`text_logits`, plus a last
        column ``log(num_zero_logits)`` when ``num_zero_logits > 0``."""
        logits = self.text_logits(text_embeds)
        if self.num_zero_logits == 0:
            return logits
        extra = logits.new_full((len(logits), 1),
                                math.log(self.num_zero_logits))
        return torch.cat([logits, extra], dim=1)

    def predict_scores(self,
                       text_embeds: Tensor,
                       image_embeds: Optional[Tensor] = None,
                       mode: Optional[str] = None) -> Tensor:
        """Class probabilities of region embeddings (background last).

        Args:
            text_embeds (Tensor): (N, D) text-branch embeddings.
            image_embeds (Tensor, optional): (N, D) image-branch embeddings,
                needed unless ``mode='text'``. Defaults to None.
            mode (str, optional): ``'text'``, ``'image'`` or ``'ensemble'``.
                Defaults to None (:attr:`score_mode`).

        Returns:
            Tensor: (N, C + 1) scores, see the class docstring.
        """
        mode = mode or self.score_mode
        if mode not in SCORE_MODES:
            raise ValueError(
                f'mode must be one of {SCORE_MODES}, got {mode!r}.')
        p_text = F.softmax(self.text_logits(text_embeds), dim=-1)
        if mode == 'text':
            return p_text
        if image_embeds is None:
            raise ValueError(f'mode={mode!r} needs image_embeds.')
        p_image = F.softmax(
            image_embeds @ self._class_embeds().t() / self.temperature,
            dim=-1)
        if mode == 'image':
            return torch.cat([p_image, p_image.new_zeros(len(p_image), 1)],
                             dim=1)
        lam = self.ensemble_lambda
        text_weight = torch.where(self.novel_mask, 1 - lam, lam)
        ensemble = p_text[:, :-1]**text_weight * p_image**(1 - text_weight)
        return torch.cat([ensemble, p_text[:, -1:]], dim=1)

    def forward(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        """Score RoI features.

        Args:
            x (Tensor): (N, C_in, S, S) RoI features.

        Returns:
            tuple: ``cls_score`` (N, C + 1): the text logits in training
            mode, the :attr:`score_mode` probabilities in eval mode (see
            :meth:`predict_scores`); and ``bbox_pred`` (N, 4).
        """
        with_image = not self.training and self.score_mode != 'text'
        text_embeds, image_embeds, bbox_pred = self.forward_embeds(
            x, with_image=with_image)
        if self.training:
            return self.train_logits(text_embeds), bbox_pred
        return self.predict_scores(text_embeds, image_embeds), bbox_pred

    # -- losses -----------------------------------------------------------
    def loss(self, cls_score: Tensor, *args, **kwargs) -> dict:
        """mmdet's box-head loss (softmax CE on the text logits, box
        regression); see ``BBoxHead.loss`` for the arguments."""
        if not self.training:
            # In eval mode forward() gives probabilities, not logits.
            raise RuntimeError('ViLDBBoxHead.loss needs train mode.')
        return super().loss(cls_score, *args, **kwargs)

    def image_loss(self, x: Tensor, clip_embeds: Tensor) -> dict:
        """The ViLD-image loss of RoI features of precomputed proposals.

        Args:
            x (Tensor): (M, C_in, S, S) RoI features of the proposals.
            clip_embeds (Tensor): (M, D) CLIP image embeddings of their
                crops (normalised here too).

        Returns:
            dict: ``loss_image``.
        """
        target = F.normalize(clip_embeds.to(x.device, torch.float32), dim=-1)
        return dict(loss_image=self.loss_image(self.image_embeds(x), target))

    # -- inference --------------------------------------------------------
    def _predict_by_feat_single(
            self,
            roi: Tensor,
            cls_score: Tensor,
            bbox_pred: Tensor,
            img_meta: dict,
            rescale: bool = False,
            rcnn_test_cfg: Optional[ConfigDict] = None) -> InstanceData:
        """As mmdet's, except that ``cls_score`` already holds probabilities
        (the ensemble's geometric mean is no softmax of anything), and the
        box regression is class-agnostic."""
        results = InstanceData()
        if roi.shape[0] == 0:
            return empty_instances([img_meta],
                                   roi.device,
                                   task_type='bbox',
                                   instance_results=[results],
                                   box_type=self.predict_box_type,
                                   use_box_type=False,
                                   num_classes=self.num_classes,
                                   score_per_cls=rcnn_test_cfg is None)[0]
        bboxes = self.bbox_coder.decode(
            roi[:, 1:], bbox_pred, max_shape=img_meta['img_shape'])
        if rescale and bboxes.size(0) > 0:
            bboxes = scale_boxes(bboxes,
                                 [1 / s for s in img_meta['scale_factor']])
        bboxes = get_box_tensor(bboxes)
        if rcnn_test_cfg is None:  # aug test: raw results, no NMS
            results.bboxes = bboxes
            results.scores = cls_score
            return results
        det_bboxes, det_labels = multiclass_nms(
            bboxes,
            cls_score,
            rcnn_test_cfg.score_thr,
            rcnn_test_cfg.nms,
            rcnn_test_cfg.max_per_img,
            box_dim=bboxes.size(-1))
        results.bboxes = det_bboxes[:, :-1]
        results.scores = det_bboxes[:, -1]
        results.labels = det_labels
        return results


def _overrides(init_cfg: dict, name: str) -> bool:
    """Whether an init_cfg entry overrides the module called ``name``."""
    override = init_cfg.get('override', [])
    override = [override] if isinstance(override, dict) else override
    return any(o.get('name') == name for o in override)
