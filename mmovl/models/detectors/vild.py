# Copyright (c) mmovl contributors. All rights reserved.
import copy
from contextlib import contextmanager
from typing import Optional, Sequence, Tuple, Union

import torch
from mmdet.models.detectors import TwoStageDetector
from mmdet.registry import MODELS
from mmdet.structures import SampleList
from mmengine.logging import MMLogger
from torch import Tensor

from mmovl.models.teachers.vild_prompts import encode_vild_names
from mmovl.utils.vocabulary import check_unique_names


def vocabulary_mask(names: Sequence[str],
                    subset: Optional[Sequence[str]]) -> torch.Tensor:
    """(len(names), ) booleans: which of ``names`` are in ``subset``.

    Args:
        names (Sequence[str]): The vocabulary.
        subset (Sequence[str], optional): Names to mark; each must be in
            ``names``. Defaults to None (none marked).

    Returns:
        torch.Tensor: A boolean mask.

    Examples:
        >>> vocabulary_mask(['cat', 'dog', 'cow'], ['cow'])
        tensor([False, False,  True])
    """
    chosen = set(subset or ())
    missing = sorted(chosen - set(names))
    if missing:
        raise ValueError(f'{len(missing)} novel names are not in the '
                         f'vocabulary, e.g. {missing[:5]}.')
    return torch.tensor([n in chosen for n in names], dtype=torch.bool)


@MODELS.register_module()
class ViLD(TwoStageDetector):
    """`ViLD <https://arxiv.org/abs/2104.13921>`_: open-vocabulary detection
    by distilling CLIP.

    mmdet's two-stage detector (Faster / Mask R-CNN with a class-agnostic
    RPN, box regression and mask head) whose box head
    (:class:`ViLDBBoxHead` in a :class:`ViLDRoIHead`) classifies regions by
    their similarity to CLIP text embeddings of the label names. A frozen
    :class:`CLIPTeacher` gives those embeddings (cached per vocabulary);
    CLIP's image embeddings of proposals are precomputed offline and come
    with the data (``clip_proposals``), so the teacher's image tower is not
    run here.

    The vocabulary is data: :meth:`set_vocabulary` (called by
    ``DetVocabularyHook`` with the training set's classes, i.e. the base
    categories, before training, and with the evaluation set's classes and
    novel classes before evaluation) sets what is scored, without
    retraining.

    Under CPU autocast (``tools/train.py --amp`` on a machine without a
    GPU) the backbone and neck run in bfloat16 and the RPN and RoI heads in
    float32: mmcv's CPU kernels of NMS and RoIAlign take no bfloat16. Under
    GPU autocast nothing changes.

    Args:
        backbone (dict): The backbone.
        rpn_head (dict): The RPN head (class-agnostic, as mmdet's).
        roi_head (dict): A ``ViLDRoIHead``; its ``bbox_head.embed_dim``
            defaults to the teacher's.
        teacher (dict): A ``CLIPTeacher`` (text embeddings only).
        train_cfg (dict): Training config of the RPN and R-CNN.
        test_cfg (dict): Testing config of the RPN and R-CNN.
        neck (dict, optional): The neck, e.g. FPN. Defaults to None.
        templates (str | Sequence[str], optional): Prompt templates of the
            label embeddings: ``'vild'`` for the authors' prompts (names
            processed, 63 templates with articles, "This is ...", see
            :mod:`mmovl.models.teachers.vild_prompts`), or anything
            ``CLIPTeacher.encode_labels`` takes (raw names). Defaults to
            None (``'a photo of a {}.'``).
        synonyms (str | dict, optional): With ``templates='vild'``, the
            category synonyms whose embeddings are averaged: an LVIS
            annotation json (e.g. ``lvis_v1_val.json``) or a ``{name:
            [synonyms]}`` json / dict. Defaults to None (the names only).
        data_preprocessor (dict, optional): Defaults to None.
        init_cfg (dict, optional): Defaults to None.

    Examples:
        >>> model = MODELS.build(cfg.model)  # doctest: +SKIP
        >>> model.set_vocabulary(['cat', 'dog', 'zebra'],  # doctest: +SKIP
        ...                      novel_names=['zebra'])
        >>> results = model.predict(inputs, data_samples)  # doctest: +SKIP
    """

    def __init__(self,
                 backbone: dict,
                 rpn_head: dict,
                 roi_head: dict,
                 teacher: dict,
                 train_cfg: dict,
                 test_cfg: dict,
                 neck: Optional[dict] = None,
                 templates: Optional[Union[str, Sequence[str]]] = None,
                 synonyms: Optional[Union[str, dict]] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        teacher = MODELS.build(teacher)
        roi_head = copy.deepcopy(roi_head)
        bbox_head = roi_head['bbox_head']
        embed_dim = bbox_head.setdefault('embed_dim', teacher.embed_dim)
        if embed_dim != teacher.embed_dim:
            raise ValueError(
                f'roi_head.bbox_head.embed_dim={embed_dim} but the teacher '
                f'embeds in {teacher.embed_dim} dimensions.')
        mask_head = roi_head.get('mask_head')
        if mask_head is not None and not mask_head.get(
                'class_agnostic', False):
            raise ValueError('ViLD needs a class-agnostic mask head '
                             '(mask_head.class_agnostic=True): its '
                             'vocabulary is not fixed.')
        super().__init__(
            backbone=backbone,
            neck=neck,
            rpn_head=rpn_head,
            roi_head=roi_head,
            train_cfg=train_cfg,
            test_cfg=test_cfg,
            data_preprocessor=data_preprocessor,
            init_cfg=init_cfg)
        self.teacher = teacher
        if synonyms is not None and templates != 'vild':
            raise ValueError("synonyms need templates='vild' (the authors' "
                             f'prompts); got templates={templates!r}.')
        self.templates = templates
        self.synonyms = synonyms
        self.vocabulary: Optional[Tuple[str, ...]] = None
        self.novel_classes: Tuple[str, ...] = ()
        # The CPU autocast type while the heads run in float32 (see
        # _float32_heads), else None.
        self._cpu_amp_dtype: Optional[torch.dtype] = None
        # Teacher records of proposal stores found to be this teacher's.
        self._checked_teachers: set = set()

    def set_vocabulary(self,
                       names: Sequence[str],
                       novel_names: Optional[Sequence[str]] = None) -> None:
        """Score ``names`` from now on (column ``i`` / label ``i`` is
        ``names[i]``).

        Args:
            names (Sequence[str]): The category names.
            novel_names (Sequence[str], optional): Which of ``names`` are
                novel (not trained on); the ensemble weighs the two branches
                the other way round for them. Defaults to None (none).
        """
        if isinstance(names, str) or not names:
            raise ValueError('names must be a non-empty sequence of '
                             'category names.')
        names = tuple(names)
        check_unique_names(names, 'category names')
        novel_mask = vocabulary_mask(names, novel_names)
        if names == self.vocabulary and \
                set(novel_names or ()) == set(self.novel_classes):
            return
        if self.templates == 'vild':
            embeds = encode_vild_names(self.teacher, names, self.synonyms)
        else:
            embeds = self.teacher.encode_labels(names, self.templates)
        self.roi_head.bbox_head.set_class_embeddings(embeds, novel_mask)
        self.vocabulary = names
        self.novel_classes = tuple(n for n in names
                                   if n in set(novel_names or ()))
        MMLogger.get_current_instance().info(
            f'ViLD: vocabulary of {len(names)} categories '
            f'({len(self.novel_classes)} novel).')

    # -- mixed precision on a CPU -----------------------------------------
    @contextmanager
    def _float32_heads(self):
        """Disable CPU autocast for the heads (mmcv's CPU NMS and RoIAlign
        take float32 only); :meth:`extract_feat` keeps it for the backbone
        and neck. Nothing changes without CPU autocast."""
        if not torch.is_autocast_enabled('cpu'):
            yield
            return
        self._cpu_amp_dtype = torch.get_autocast_dtype('cpu')
        try:
            with torch.autocast('cpu', enabled=False):
                yield
        finally:
            self._cpu_amp_dtype = None

    def extract_feat(self, batch_inputs: Tensor) -> Tuple[Tensor]:
        """The backbone's and neck's features; under CPU autocast computed
        in its type and returned in float32, for the heads."""
        if self._cpu_amp_dtype is None:
            return super().extract_feat(batch_inputs)
        with torch.autocast('cpu', dtype=self._cpu_amp_dtype):
            feats = super().extract_feat(batch_inputs)
        return tuple(f.float() for f in feats)

    def check_proposal_teacher(self, batch_data_samples: SampleList) -> None:
        """Refuse CLIP proposal embeddings made by another teacher.

        Both ViT-B/16 and ViT-B/32 embed in 512 dimensions, so a store of
        the wrong teacher would train without any error. Each sample's
        ``clip_proposals.metainfo['teacher']`` (the store's record, see
        ``LoadCLIPProposalEmbeds``) must name this model's teacher: the same
        open_clip architecture and the same weights (SHA-256 of the
        checkpoint file). Proposals without the key (made by hand) are not
        checked; a store that records no teacher is refused.

        Raises:
            ValueError: Naming both teachers.
        """
        for sample in batch_data_samples:
            proposals = sample.get('clip_proposals')
            if proposals is None or 'teacher' not in proposals.metainfo:
                continue
            record = proposals.metainfo['teacher']
            key = None if record is None else (record.get('model_name'),
                                               record.get('weights'))
            if key is not None and key in self._checked_teachers:
                continue
            ours = (self.teacher.model_name, self.teacher.weights_id)
            if key != ours:
                store = 'records no teacher' if key is None else \
                    f'was made with CLIP {key[0]} (weights {key[1]})'
                raise ValueError(
                    f'The proposal-embedding store of image '
                    f'{sample.metainfo.get("img_id")} {store}, but this '
                    f'model\'s teacher is {ours[0]} (weights {ours[1]}, '
                    f'{self.teacher.checkpoint}). Recompute the store with '
                    'tools/misc/precompute_vild_embeds.py and this config '
                    '(its teacher is the default there), or point the '
                    "config's model.teacher at the store's CLIP.")
            self._checked_teachers.add(key)

    def loss(self, batch_inputs: Tensor,
             batch_data_samples: SampleList) -> dict:
        """mmdet's two-stage losses (see ``TwoStageDetector.loss``), with
        the heads in float32 under CPU autocast; first checks that the
        CLIP proposal embeddings are this teacher's
        (:meth:`check_proposal_teacher`)."""
        self.check_proposal_teacher(batch_data_samples)
        with self._float32_heads():
            return super().loss(batch_inputs, batch_data_samples)

    def predict(self,
                batch_inputs: Tensor,
                batch_data_samples: SampleList,
                rescale: bool = True) -> SampleList:
        """mmdet's two-stage prediction (see ``TwoStageDetector.predict``),
        with the heads in float32 under CPU autocast."""
        with self._float32_heads():
            return super().predict(
                batch_inputs, batch_data_samples, rescale=rescale)
