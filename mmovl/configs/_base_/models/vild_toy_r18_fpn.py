# Copyright (c) mmovl contributors. All rights reserved.
# A tiny ViLD-ensemble for the toy world (CPU, minutes): a thin ResNet-18
# (base width 16, from scratch) + FPN-64, box-only (Faster R-CNN, no masks),
# anchors sized for the toy shapes (11-28 px in 64 px images, i.e. 22-56 px
# at 128 px), the toy CLIP as text teacher (D = 64). Same losses and
# inference as the paper's model, at toy scale, and the authors' norms where
# the toy affords them: BN on the FPN outputs, a 2-conv RPN head with a BN
# per level, BN after the box head's fcs, Huber box losses. Unlike the
# authors' head, no convs before the fcs (4 convs cost about as much as the
# rest of the toy detector on a CPU).
from mmcv.ops import RoIAlign, nms
from mmdet.models import (FPN, CrossEntropyLoss, DetDataPreprocessor, ResNet,
                          SingleRoIExtractor, SmoothL1Loss)
from mmdet.models.task_modules import (AnchorGenerator, DeltaXYWHBBoxCoder,
                                       MaxIoUAssigner, RandomSampler)

from mmovl.models import (CLIPTeacher, ViLD, ViLDBBoxHead, ViLDImageLoss,
                          ViLDRoIHead, ViLDRPNHead)

toy_clip_name = 'mmovl-toy-vit'
toy_teacher = 'data/toy_world/toy_clip.safetensors'
norm_cfg = dict(type='BN', requires_grad=True)

model = dict(
    type=ViLD,
    data_preprocessor=dict(
        type=DetDataPreprocessor,
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_size_divisor=32),
    backbone=dict(
        type=ResNet,
        depth=18,
        base_channels=16,
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        frozen_stages=-1,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=False,
        style='pytorch'),
    neck=dict(
        type=FPN, in_channels=[16, 32, 64, 128], out_channels=64,
        num_outs=5, add_extra_convs='on_output', norm_cfg=norm_cfg,
        no_norm_on_lateral=True),
    rpn_head=dict(
        type=ViLDRPNHead,
        in_channels=64,
        feat_channels=64,
        num_convs=2,
        norm_cfg=norm_cfg,
        num_levels=5,
        anchor_generator=dict(
            type=AnchorGenerator,
            scales=[4],  # 16-256 px anchors over P2-P6
            ratios=[0.5, 1.0, 2.0],
            strides=[4, 8, 16, 32, 64]),
        bbox_coder=dict(
            type=DeltaXYWHBBoxCoder,
            target_means=[.0, .0, .0, .0],
            target_stds=[1.0, 1.0, 1.0, 1.0]),
        loss_cls=dict(
            type=CrossEntropyLoss, use_sigmoid=True, loss_weight=1.0),
        loss_bbox=dict(type=SmoothL1Loss, beta=1 / 9, loss_weight=1 / 9)),
    roi_head=dict(
        type=ViLDRoIHead,
        bbox_roi_extractor=dict(
            type=SingleRoIExtractor,
            roi_layer=dict(type=RoIAlign, output_size=7, sampling_ratio=0),
            out_channels=64,
            featmap_strides=[4, 8, 16, 32]),
        bbox_head=dict(
            type=ViLDBBoxHead,
            in_channels=64,
            roi_feat_size=7,
            num_shared_fcs=2,
            fc_out_channels=256,
            norm_cfg=norm_cfg,
            norm_fcs=True,
            num_classes=24,  # the toy world's seen labels
            temperature=0.01,
            image_branch='tower',
            score_mode='ensemble',
            ensemble_lambda=2 / 3,
            loss_image=dict(type=ViLDImageLoss, loss_weight=0.5),
            bbox_coder=dict(
                type=DeltaXYWHBBoxCoder,
                target_means=[0., 0., 0., 0.],
                target_stds=[0.1, 0.1, 0.2, 0.2]),
            reg_class_agnostic=True,
            loss_cls=dict(
                type=CrossEntropyLoss, use_sigmoid=False, loss_weight=1.0),
            loss_bbox=dict(type=SmoothL1Loss, beta=1.0, loss_weight=1.0))),
    teacher=dict(
        type=CLIPTeacher, model_name=toy_clip_name, checkpoint=toy_teacher),
    train_cfg=dict(
        rpn=dict(
            assigner=dict(
                type=MaxIoUAssigner,
                pos_iou_thr=0.7,
                neg_iou_thr=0.3,
                min_pos_iou=0.3,
                match_low_quality=True,
                ignore_iof_thr=-1),
            sampler=dict(
                type=RandomSampler,
                num=128,
                pos_fraction=0.5,
                neg_pos_ub=-1,
                add_gt_as_proposals=False),
            allowed_border=-1,
            pos_weight=-1,
            debug=False),
        rpn_proposal=dict(
            nms_pre=1000,
            max_per_img=300,
            nms=dict(type=nms, iou_threshold=0.7),
            min_bbox_size=0),
        rcnn=dict(
            assigner=dict(
                type=MaxIoUAssigner,
                pos_iou_thr=0.5,
                neg_iou_thr=0.5,
                min_pos_iou=0.5,
                match_low_quality=False,
                ignore_iof_thr=-1),
            sampler=dict(
                type=RandomSampler,
                num=128,
                pos_fraction=0.25,
                neg_pos_ub=-1,
                add_gt_as_proposals=True),
            pos_weight=-1,
            debug=False)),
    test_cfg=dict(
        rpn=dict(
            nms_pre=500,
            max_per_img=100,
            nms=dict(type=nms, iou_threshold=0.7),
            min_bbox_size=0),
        rcnn=dict(
            score_thr=0.0,
            nms=dict(type=nms, iou_threshold=0.5),
            max_per_img=20)))
