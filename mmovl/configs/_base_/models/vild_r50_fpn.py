# Copyright (c) mmovl contributors. All rights reserved.
# ViLD on Mask R-CNN R-50 FPN, the paper's main setting: class-agnostic RPN,
# box regression and mask head; the box head projects regions into CLIP's
# space, scored against CLIP text embeddings of the current vocabulary with a
# learned background embedding, T = 0.01; ViLD-image distils the CLIP
# embeddings of 300 precomputed proposals an image with weight 0.5. This base
# is plain ViLD (one region embedding for both losses, text-only scoring);
# ViLD-ensemble configs switch `image_branch` to 'tower' and `score_mode` to
# 'ensemble'.
#
# As the authors' code (tensorflow/tpu vild_resnet.yaml and the detection
# code it runs): trainable SyncBN everywhere (momentum 0.997 / eps 1e-4 in
# TensorFlow's terms), the ResNet-50 trained from scratch with no frozen
# stage, BN on the FPN's outputs, P6 by a stride-2 conv on P5, an RPN head
# of 2 shared convs with a BN per level, a box head of 4 convs + 2 fcs with
# BN after each, Huber box losses (delta 1/9 RPN, 1 R-CNN), 300 detections
# at score threshold 0.0. See configs/vild/README.md for the table.
#
# Teacher: CLIP ViT-B/32 (the paper's), OpenAI's weights as an open_clip
# state dict, e.g. `open_clip_model.safetensors` of
# timm/vit_base_patch32_clip_224.openai saved as the file below.
from mmcv.ops import RoIAlign, nms
from mmdet.models import (FPN, CrossEntropyLoss, DetDataPreprocessor,
                          FCNMaskHead, ResNet, SingleRoIExtractor,
                          SmoothL1Loss)
from mmdet.models.task_modules import (AnchorGenerator, DeltaXYWHBBoxCoder,
                                       MaxIoUAssigner, RandomSampler)

from mmovl.models import (CLIPTeacher, ViLD, ViLDBBoxHead, ViLDImageLoss,
                          ViLDRoIHead, ViLDRPNHead)

clip_name = 'ViT-B-32-quickgelu'  # OpenAI's weights use QuickGELU
clip_checkpoint = 'checkpoints/clip_vit_b32_openai.safetensors'
# The authors' BN: synchronised, trainable, TensorFlow momentum 0.997 (the
# running statistics keep 0.997 of themselves: PyTorch momentum 0.003),
# epsilon 1e-4; in the backbone, FPN, RPN, box and mask heads alike.
norm_cfg = dict(type='SyncBN', requires_grad=True, momentum=0.003, eps=1e-4)
head_norm_cfg = norm_cfg
# The authors train the backbone from scratch (train.checkpoint.path is '').
# From ImageNet instead (as DetPro and mmdet's LVIS configs), in a child:
#   model.backbone.init_cfg = imagenet_init_cfg
imagenet_init_cfg = dict(
    type='Pretrained', checkpoint='torchvision://resnet50')
# Huber(delta) = delta * SmoothL1(beta=delta): mmdet's SmoothL1Loss with
# beta = loss_weight = delta is the authors' Huber loss.
rpn_huber_delta = 1 / 9
rcnn_huber_delta = 1.0

model = dict(
    type=ViLD,
    data_preprocessor=dict(
        type=DetDataPreprocessor,
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_mask=True,
        pad_size_divisor=32),
    backbone=dict(
        type=ResNet,
        depth=50,
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        frozen_stages=-1,
        norm_cfg=norm_cfg,
        norm_eval=False,
        zero_init_residual=False,
        style='pytorch',
        init_cfg=None),
    # BN on the outputs only (not the laterals); P6 from P5's output
    neck=dict(
        type=FPN,
        in_channels=[256, 512, 1024, 2048],
        out_channels=256,
        num_outs=5,
        add_extra_convs='on_output',
        norm_cfg=norm_cfg,
        no_norm_on_lateral=True),
    rpn_head=dict(
        type=ViLDRPNHead,
        in_channels=256,
        feat_channels=256,
        num_convs=2,
        norm_cfg=norm_cfg,
        num_levels=5,
        anchor_generator=dict(
            type=AnchorGenerator,
            scales=[8],
            ratios=[0.5, 1.0, 2.0],
            strides=[4, 8, 16, 32, 64]),
        bbox_coder=dict(
            type=DeltaXYWHBBoxCoder,
            target_means=[.0, .0, .0, .0],
            target_stds=[1.0, 1.0, 1.0, 1.0]),
        loss_cls=dict(
            type=CrossEntropyLoss, use_sigmoid=True, loss_weight=1.0),
        loss_bbox=dict(
            type=SmoothL1Loss, beta=rpn_huber_delta,
            loss_weight=rpn_huber_delta)),
    roi_head=dict(
        type=ViLDRoIHead,
        bbox_roi_extractor=dict(
            type=SingleRoIExtractor,
            roi_layer=dict(type=RoIAlign, output_size=7, sampling_ratio=0),
            out_channels=256,
            featmap_strides=[4, 8, 16, 32]),
        bbox_head=dict(
            type=ViLDBBoxHead,
            in_channels=256,
            roi_feat_size=7,
            num_shared_convs=4,
            num_shared_fcs=2,
            conv_out_channels=256,
            fc_out_channels=1024,
            norm_cfg=head_norm_cfg,
            norm_fcs=True,
            num_classes=866,  # LVIS v1 base; set_vocabulary() resizes
            temperature=0.01,
            image_branch='shared',
            score_mode='text',
            loss_image=dict(type=ViLDImageLoss, loss_weight=0.5),
            bbox_coder=dict(
                type=DeltaXYWHBBoxCoder,
                target_means=[0., 0., 0., 0.],
                target_stds=[0.1, 0.1, 0.2, 0.2]),
            reg_class_agnostic=True,
            loss_cls=dict(
                type=CrossEntropyLoss, use_sigmoid=False, loss_weight=1.0),
            loss_bbox=dict(
                type=SmoothL1Loss, beta=rcnn_huber_delta,
                loss_weight=rcnn_huber_delta)),
        mask_roi_extractor=dict(
            type=SingleRoIExtractor,
            roi_layer=dict(type=RoIAlign, output_size=14, sampling_ratio=0),
            out_channels=256,
            featmap_strides=[4, 8, 16, 32]),
        mask_head=dict(
            type=FCNMaskHead,
            num_convs=4,
            in_channels=256,
            conv_out_channels=256,
            norm_cfg=head_norm_cfg,
            num_classes=866,
            class_agnostic=True,
            loss_mask=dict(
                type=CrossEntropyLoss, use_mask=True, loss_weight=1.0))),
    teacher=dict(
        type=CLIPTeacher,
        model_name=clip_name,
        checkpoint=clip_checkpoint,
        cache_dir='data/label_embeds'),
    # The authors' prompts: LVIS names processed ('bat_(animal)' -> 'bat
    # (animal)'), 63 templates with articles, "This is ..." (see
    # mmovl/models/teachers/vild_prompts.py); the LVIS configs add synonyms.
    templates='vild',
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
                num=256,
                pos_fraction=0.5,
                neg_pos_ub=-1,
                add_gt_as_proposals=False),
            allowed_border=-1,
            pos_weight=-1,
            debug=False),
        rpn_proposal=dict(
            nms_pre=2000,
            max_per_img=1000,
            nms=dict(type=nms, iou_threshold=0.7),
            min_bbox_size=0),
        rcnn=dict(
            assigner=dict(
                type=MaxIoUAssigner,
                pos_iou_thr=0.5,
                neg_iou_thr=0.5,
                min_pos_iou=0.5,
                match_low_quality=True,
                ignore_iof_thr=-1),
            sampler=dict(
                type=RandomSampler,
                num=512,
                pos_fraction=0.25,
                neg_pos_ub=-1,
                add_gt_as_proposals=True),
            mask_size=28,
            pos_weight=-1,
            debug=False)),
    test_cfg=dict(
        rpn=dict(
            nms_pre=1000,
            max_per_img=1000,
            nms=dict(type=nms, iou_threshold=0.7),
            min_bbox_size=0),
        # LVIS AP over 300 detections an image, no score threshold (the
        # authors' post-processing; mmdet's LVIS configs use 1e-4).
        rcnn=dict(
            score_thr=0.0,
            nms=dict(type=nms, iou_threshold=0.5),
            max_per_img=300,
            mask_thr_binary=0.5)))
