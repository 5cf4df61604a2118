# Copyright (c) mmovl contributors. All rights reserved.
import logging
from typing import List, Tuple

import torch
import torch.nn.functional as F
from mmdet.models.roi_heads import StandardRoIHead
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmdet.structures.bbox import bbox2roi, bbox_flip, scale_boxes
from mmdet.utils import InstanceList
from mmengine.logging import print_log
from torch import Tensor

FLIP_DIRECTIONS = ('horizontal', 'vertical', 'diagonal')


def map_boxes_to_input(bboxes: Tensor, img_meta: dict) -> Tensor:
    """Map boxes from original-image pixels into the network input's frame.

    Applies what mmdet's ``Resize`` and ``RandomFlip`` did to the image, as
    recorded in the sample's metainfo: scaling by ``scale_factor`` (w, h),
    then, if ``flip``, flipping within ``img_shape`` (the resized shape)
    along ``flip_direction``. Padding (bottom / right) moves nothing. Crops
    are not recorded in the metainfo and cannot be mapped.

    Args:
        bboxes (Tensor): (M, 4) xyxy boxes in original-image pixels.
        img_meta (dict): The sample's metainfo; a missing ``scale_factor``
            means (1, 1) and a missing ``flip`` means no flip.

    Returns:
        Tensor: (M, 4) float boxes in the input frame.

    Examples:
        >>> import torch
        >>> meta = dict(scale_factor=(2.0, 0.5), img_shape=(50, 200),
        ...             flip=True, flip_direction='horizontal')
        >>> map_boxes_to_input(torch.tensor([[10., 20., 30., 60.]]), meta)
        tensor([[140.,  10., 180.,  30.]])
    """
    bboxes = torch.as_tensor(bboxes, dtype=torch.float32)
    if bboxes.dim() != 2 or bboxes.shape[1] != 4:
        raise ValueError('clip_proposals.bboxes must be (M, 4) xyxy boxes, '
                         f'got shape {tuple(bboxes.shape)}.')
    scale_factor = tuple(img_meta.get('scale_factor', (1.0, 1.0)))
    if len(scale_factor) != 2:
        raise ValueError('Expected metainfo scale_factor (w, h), got '
                         f'{scale_factor}.')
    bboxes = scale_boxes(bboxes, scale_factor)
    if img_meta.get('flip', False):
        direction = img_meta.get('flip_direction')
        if direction not in FLIP_DIRECTIONS:
            raise ValueError(f'metainfo flip_direction must be one of '
                             f'{FLIP_DIRECTIONS}, got {direction!r}.')
        if 'img_shape' not in img_meta:
            raise ValueError('A flipped sample needs img_shape in its '
                             'metainfo to map clip_proposals.')
        bboxes = bbox_flip(bboxes, img_meta['img_shape'], direction)
    return bboxes


@MODELS.register_module()
class ViLDRoIHead(StandardRoIHead):
    """The RoI head of `ViLD <https://arxiv.org/abs/2104.13921>`_.

    mmdet's standard RoI head with a :class:`ViLDBBoxHead`; it adds the
    ViLD-image loss on the precomputed CLIP proposals each training sample
    carries as ``data_sample.clip_proposals`` (an ``InstanceData`` with
    ``bboxes`` (M, 4) xyxy and ``embeds`` (M, D)). Boxes whose metainfo
    ``frame`` is ``'input'`` are used as they are (``PackViLDInputs`` mapped
    them with the pipeline's homography); others are in original-image
    pixels and are mapped with :func:`map_boxes_to_input`.
    Samples without the field, or with M = 0, add no proposals; a batch
    without any gives ``loss_image = 0`` (still connected to the image
    branch, so DDP needs no ``find_unused_parameters``) and a one-time
    warning. A box head without an image branch has no image loss
    (ViLD-text). Everything else, inference included, is the standard
    head's.

    Args:
        **kwargs: The arguments of mmdet's ``StandardRoIHead``.

    Examples:
        >>> roi_head = dict(type='ViLDRoIHead',  # doctest: +SKIP
        ...                 bbox_head=dict(type='ViLDBBoxHead', ...))
    """

    def loss(self, x: Tuple[Tensor], rpn_results_list: InstanceList,
             batch_data_samples: List[DetDataSample]) -> dict:
        """The standard losses (ViLD-text, box, mask) plus ``loss_image``.

        With ``image_branch='shared'`` or ``'projection'`` the sampled RoIs
        and the distillation proposals pass the box head in one batch
        (:meth:`bbox_loss`), as in the authors' code, so that the head's
        BN sees one statistic of both; with ``'tower'`` the text branch sees
        the sampled RoIs and the image tower the proposals, each its own
        batch (also the authors').

        Args:
            x (tuple[Tensor]): Multi-level features.
            rpn_results_list (list[InstanceData]): Proposals of the RPN.
            batch_data_samples (list[DetDataSample]): The batch's samples.

        Returns:
            dict[str, Tensor]: The losses.
        """
        branch = getattr(self.bbox_head, 'image_branch', None)
        if branch in ('shared', 'projection'):
            self._distill = self.distill_rois(x, batch_data_samples)
            try:
                return super().loss(x, rpn_results_list, batch_data_samples)
            finally:
                self._distill = None
        losses = super().loss(x, rpn_results_list, batch_data_samples)
        if branch is not None:
            losses.update(self.image_distill_loss(x, batch_data_samples))
        return losses

    def bbox_loss(self, x: Tuple[Tensor], sampling_results: list) -> dict:
        """mmdet's box loss; during a one-batch :meth:`loss`, the sampled
        RoIs and the distillation proposals go through the box head
        together, and ``loss_image`` joins ``loss_bbox``.

        Args:
            x (tuple[Tensor]): Multi-level features.
            sampling_results (list[SamplingResult]): The sampled RoIs.

        Returns:
            dict: As ``StandardRoIHead.bbox_loss`` (``bbox_feats`` of the
            sampled RoIs only).
        """
        distill = getattr(self, '_distill', None)
        if distill is None:
            return super().bbox_loss(x, sampling_results)
        rois = bbox2roi([res.priors for res in sampling_results])
        distill_rois, distill_embeds = distill
        feats = self.bbox_roi_extractor(
            x[:self.bbox_roi_extractor.num_inputs],
            torch.cat([rois, distill_rois]))
        if self.with_shared_head:
            feats = self.shared_head(feats)
        head, n = self.bbox_head, len(rois)
        text_embeds, image_embeds, bbox_pred = head.forward_embeds(feats)
        cls_score = head.train_logits(text_embeds[:n])
        loss_and_target = head.loss_and_target(
            cls_score=cls_score,
            bbox_pred=bbox_pred[:n],
            rois=rois,
            sampling_results=sampling_results,
            rcnn_train_cfg=self.train_cfg)
        target = F.normalize(distill_embeds.float(), dim=-1)
        loss_bbox = dict(loss_and_target['loss_bbox'],
                         loss_image=head.loss_image(image_embeds[n:], target))
        return dict(cls_score=cls_score, bbox_pred=bbox_pred[:n],
                    bbox_feats=feats[:n], loss_bbox=loss_bbox)

    def distill_rois(self, x: Tuple[Tensor],
                     batch_data_samples: List[DetDataSample]
                     ) -> Tuple[Tensor, Tensor]:
        """The RoIs (K, 5) of the batch's ``clip_proposals`` in the input
        frame and their (K, D) CLIP embeddings (both empty without any).

        Args:
            x (tuple[Tensor]): Multi-level features (for device and dtype).
            batch_data_samples (list[DetDataSample]): The batch's samples.

        Returns:
            tuple[Tensor, Tensor]: ``rois`` and ``embeds``.
        """
        if not any('clip_proposals' in s for s in batch_data_samples) and \
                not getattr(self, '_warned_no_proposals', False):
            self._warned_no_proposals = True
            print_log(
                'ViLD: no sample of this batch carries clip_proposals, so '
                'loss_image is 0 (add LoadCLIPProposalEmbeds to the '
                'pipeline, or use a head with image_branch=None for '
                'ViLD-text). Warned once.',
                logger='current',
                level=logging.WARNING)
        device = x[0].device
        boxes, embeds = [], []
        for sample in batch_data_samples:
            proposals = sample.get('clip_proposals')
            if proposals is None or len(proposals) == 0:
                boxes.append(x[0].new_zeros(0, 4))
                continue
            if proposals.metainfo.get('frame') == 'input':
                # mapped by PackViLDInputs with the pipeline's homography
                bboxes = torch.as_tensor(proposals.bboxes).float()
            else:
                bboxes = map_boxes_to_input(proposals.bboxes,
                                            sample.metainfo)
            boxes.append(bboxes.to(device))
            embeds.append(torch.as_tensor(proposals.embeds))
        rois = bbox2roi(boxes)
        embeds = torch.cat(embeds).to(device) if embeds else \
            x[0].new_zeros(0, self.bbox_head.embed_dim)
        if len(embeds) != len(rois):
            raise ValueError('clip_proposals must have one embedding per box: '
                             f'{len(rois)} boxes, {len(embeds)} embeddings.')
        return rois, embeds

    def image_distill_loss(self, x: Tuple[Tensor],
                           batch_data_samples: List[DetDataSample]) -> dict:
        """The ViLD-image loss of the batch's ``clip_proposals``, in a pass
        of their own (the ensemble's image tower).

        Args:
            x (tuple[Tensor]): Multi-level features.
            batch_data_samples (list[DetDataSample]): The batch's samples.

        Returns:
            dict[str, Tensor]: ``loss_image`` (0 when no sample has
            ``clip_proposals``, still connected to the image branch, so that
            DDP finds every parameter used).
        """
        rois, embeds = self.distill_rois(x, batch_data_samples)
        feats = self.bbox_roi_extractor(
            x[:self.bbox_roi_extractor.num_inputs], rois)
        if self.with_shared_head:
            feats = self.shared_head(feats)
        return self.bbox_head.image_loss(feats, embeds)
