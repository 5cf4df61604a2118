# Copyright (c) mmovl contributors. All rights reserved.
# CPRFL on COCO-LT: an ImageNet ResNet-101 at 448 x 448 (as the paper), the
# prompts initialised from CLIP ViT-B/16's embeddings of 'a photo of a
# [CLASS].', asymmetric loss (gamma+ 0, gamma- 4, clip 0.05), 80 epochs.
# The optimiser and schedule are mmovl's choice (AdamW, warm-up + cosine).
#
# Expected files (COCO-format instances JSON, as CocoMultiLabelDataset reads):
# - data/coco/annotations/coco_lt_train.json: the 1,909 COCO-LT training
#   images (the image list of the distribution-balanced-loss release, Wu et
#   al. 2020) with their instances from instances_train2017.json; images
#   under data/coco/train2017/. Its per-class image counts give the head
#   (>= 100) / medium (20-99) / tail (< 20) groups of the test metrics.
# - data/coco/annotations/coco_lt_test.json: the 5,000 COCO-LT test images
#   (from val2017), images under data/coco/val2017/.
# - checkpoints/clip_vit_b16_openai.safetensors: OpenAI's CLIP ViT-B/16 as a
#   plain open_clip state dict (see configs/mkt/mkt_vit_b16_20e_nuswide.py).
# - checkpoints/resnet101_in1k.pth: ImageNet-1k ResNet-101 weights in
#   mmpretrain's layout (e.g. its resnet101_8xb32_in1k checkpoint).
from mmengine.config import read_base

with read_base():
    from .._base_.default_runtime_cls import *  # noqa: F401,F403

from mmcv.transforms import LoadImageFromFile
from mmengine.dataset import DefaultSampler
from mmengine.optim import CosineAnnealingLR, LinearLR, OptimWrapper
from mmpretrain.datasets import PackInputs, RandomFlip, Resize
from mmpretrain.models import AsymmetricLoss, ResNet
from torch.optim import AdamW

from mmovl.datasets import CocoMultiLabelDataset
from mmovl.engine import VocabularyHook
from mmovl.evaluation import ZSLMultiLabelMetric
from mmovl.models import CPRFL, CLIPTeacher, CPRFLHead

# -- data ------------------------------------------------------------------
data_root = 'data/coco'
train_ann_file = 'annotations/coco_lt_train.json'
train_prefix = 'train2017'
test_ann_file = 'annotations/coco_lt_test.json'
test_prefix = 'val2017'
num_classes = 80
img_size = 448
batch_size = 32

data_preprocessor = dict(
    num_classes=num_classes,
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=True)
train_pipeline = [
    dict(type=LoadImageFromFile),
    dict(type=Resize, scale=(img_size, img_size)),
    dict(type=RandomFlip, prob=0.5, direction='horizontal'),
    dict(type=PackInputs),
]
test_pipeline = [
    dict(type=LoadImageFromFile),
    dict(type=Resize, scale=(img_size, img_size)),
    dict(type=PackInputs),
]
train_dataloader = dict(
    batch_size=batch_size,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type=DefaultSampler, shuffle=True),
    dataset=dict(
        type=CocoMultiLabelDataset,
        data_root=data_root,
        ann_file=train_ann_file,
        data_prefix=train_prefix,
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=batch_size,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type=DefaultSampler, shuffle=False),
    dataset=dict(
        type=CocoMultiLabelDataset,
        data_root=data_root,
        ann_file=test_ann_file,
        data_prefix=test_prefix,
        frequency_ann_file=train_ann_file,
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type=ZSLMultiLabelMetric, k=(3, 5))
test_evaluator = val_evaluator

# -- model -----------------------------------------------------------------
clip_name = 'ViT-B-16-quickgelu'  # OpenAI's weights use QuickGELU
clip_checkpoint = 'checkpoints/clip_vit_b16_openai.safetensors'
backbone_checkpoint = 'checkpoints/resnet101_in1k.pth'
model = dict(
    type=CPRFL,
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type=ResNet,
        depth=101,
        out_indices=(3, ),
        init_cfg=dict(
            type='Pretrained',
            checkpoint=backbone_checkpoint,
            prefix='backbone.')),
    head=dict(
        type=CPRFLHead,
        in_channels=2048,
        embed_dims=1024,
        tau=0.5,
        num_heads=8,
        feedforward_channels=2048,
        loss=dict(
            type=AsymmetricLoss,
            gamma_pos=0.0,
            gamma_neg=4.0,
            clip=0.05,
            use_sigmoid=True)),
    teacher=dict(
        type=CLIPTeacher,
        model_name=clip_name,
        checkpoint=clip_checkpoint,
        cache_dir='data/coco/label_embeds'))

# -- schedule --------------------------------------------------------------
max_epochs = 80
warmup_epochs = 2
optim_wrapper = dict(
    type=OptimWrapper,
    optimizer=dict(type=AdamW, lr=1e-4, weight_decay=1e-4),
    clip_grad=dict(max_norm=10.0))
param_scheduler = [
    dict(type=LinearLR, start_factor=1e-2, by_epoch=True, begin=0,
         end=warmup_epochs, convert_to_iter_based=True),
    dict(type=CosineAnnealingLR, eta_min=1e-6, by_epoch=True,
         begin=warmup_epochs, end=max_epochs, convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=5)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=batch_size)

custom_hooks = [dict(type=VocabularyHook)]
