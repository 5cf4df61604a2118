# Copyright (c) mmovl contributors. All rights reserved.
# CPRFL on COCO-LT as its authors' code runs it (github jiexuanyan/CPRFL:
# config.py, train.py, src/models/build_model_TF.py, src/models/TF.py,
# src/data_loader/imagelist.py, utils/LT_engine_grouplr.py):
# - an ImageNet ResNet-101 at 448 x 448, its layer4 map (14 x 14) as visual
#   tokens, d = 2048, the authors' VSI block (CPRFLHead's default);
# - CLIP RN50's text tower (1024-d) trained with the model, raw features of
#   'a photo of a [CLASS].';
# - ASL gamma+ 0, gamma- 4, clip 0.05, focusing weight without gradient;
# - images in [0, 1] (no mean / std), Resize 448 (PIL bilinear), Cutout of
#   half the side + RandAugment (two of 15 ops, each with p 0.5, random
#   magnitude), no flip;
# - AdamW lr 1e-5 for every parameter, weight decay 1e-4 on weights only
#   (not biases / norms), OneCycle (10 % warm-up, cosine), 80 epochs,
#   batch 16, AMP (tools/train.py --amp), EMA 0.998 of parameters and
#   buffers (mmengine's EMAHook: validation, test and checkpoints use the
#   EMA weights);
# - evaluated every epoch after the 10th; the best EMA by test mAP kept
#   (best_multi-label_lt_mAP_epoch_*.pth; selected on the test set, as the
#   authors; the last epoch's checkpoint is kept too: report both).
# Known differences: torch's OneCycleLR (theirs) also cycles Adam's beta1
# 0.95 -> 0.85 -> 0.95, mmengine's OneCycleLR keeps it at 0.9; their Cutout
# fills with a random colour, mmpretrain's with grey 128; their loop stops
# after epoch 79 of the 80-epoch schedule (lr then below 5e-9).
#
# Expected files (COCO-format instances JSON, as CocoMultiLabelDataset reads):
# - data/coco/annotations/coco_lt_train.json: the 1,909 COCO-LT training
#   images (the image list of the distribution-balanced-loss release, Wu et
#   al. 2020) with their instances from instances_train2017.json; images
#   under data/coco/train2017/. Its per-class image counts give the head
#   (>= 100) / medium (20-99) / tail (< 20) groups of the test metrics.
# - data/coco/annotations/coco_lt_test.json: the 5,000 COCO-LT test images
#   (from val2017), images under data/coco/val2017/.
# - checkpoints/clip_rn50_openai.safetensors: OpenAI's CLIP RN50 as a
#   plain open_clip state dict (open_clip 'RN50-quickgelu' / 'openai').
# - checkpoints/resnet101_in1k.pth: ImageNet-1k ResNet-101 weights in
#   mmpretrain's layout (e.g. its resnet101_8xb32_in1k checkpoint; the
#   authors start from torchvision's).
from mmengine.config import read_base

with read_base():
    from .._base_.default_runtime_cls import *  # noqa: F401,F403

from mmcv.transforms import LoadImageFromFile
from mmengine.dataset import DefaultSampler
from mmengine.hooks import CheckpointHook, EMAHook
from mmengine.optim import OptimWrapper
from mmpretrain.datasets import Cutout, PackInputs, RandAugment, Resize
from mmpretrain.models import ResNet
from torch.optim import AdamW

from mmovl.datasets import CocoMultiLabelDataset
from mmovl.engine import CheckpointableOneCycleLR, VocabularyHook
from mmovl.evaluation import ZSLMultiLabelMetric
from mmovl.models import (CPRFL, CLIPTeacher, CPRFLHead,
                          DetachedAsymmetricLoss)

# -- data ------------------------------------------------------------------
data_root = 'data/coco'
train_ann_file = 'annotations/coco_lt_train.json'
train_prefix = 'train2017'
test_ann_file = 'annotations/coco_lt_test.json'
test_prefix = 'val2017'
num_classes = 80
img_size = 448
batch_size = 16

# torchvision's ToTensor: RGB in [0, 1], no mean / std
data_preprocessor = dict(
    num_classes=num_classes,
    mean=[0.0, 0.0, 0.0],
    std=[255.0, 255.0, 255.0],
    to_rgb=True)
# The `randaugment` package's RandAugment (its __call__): two of these 15
# ops, each applied with p 0.5 at a magnitude drawn from 1-9 of 10 levels.
randaug_policies = [
    dict(type='Invert'),
    dict(type='Cutout', magnitude_range=(0, 20)),
    dict(type='Sharpness', magnitude_range=(0, 0.9)),
    dict(type='AutoContrast'),
    dict(type='Posterize', magnitude_range=(8, 4)),
    dict(type='Shear', magnitude_range=(0, 0.3), direction='horizontal'),
    dict(type='Translate', magnitude_range=(0, 150 / 331),
         direction='horizontal'),
    dict(type='Translate', magnitude_range=(0, 150 / 331),
         direction='vertical'),
    dict(type='Shear', magnitude_range=(0, 0.3), direction='vertical'),
    dict(type='Rotate', magnitude_range=(0, 30)),
    dict(type='Equalize'),
    dict(type='Contrast', magnitude_range=(0, 0.9)),
    dict(type='ColorTransform', magnitude_range=(0, 0.9)),
    dict(type='Solarize', magnitude_range=(256, 0)),
    dict(type='Brightness', magnitude_range=(0, 0.9)),
]
for _policy in randaug_policies:
    _policy['prob'] = 0.5
train_pipeline = [
    dict(type=LoadImageFromFile),
    dict(type=Resize, scale=(img_size, img_size), backend='pillow',
         interpolation='bilinear'),
    dict(type=Cutout, shape=img_size // 2, prob=1.0, pad_val=128),
    dict(type=RandAugment, policies=randaug_policies, num_policies=2,
         magnitude_level=9, magnitude_std='inf', total_level=9),
    dict(type=PackInputs),
]
test_pipeline = [
    dict(type=LoadImageFromFile),
    dict(type=Resize, scale=(img_size, img_size), backend='pillow',
         interpolation='bilinear'),
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
clip_name = 'RN50-quickgelu'  # OpenAI's weights use QuickGELU
clip_checkpoint = 'checkpoints/clip_rn50_openai.safetensors'
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
        embed_dims=2048,
        tau=0.5,
        vsi_type='cprfl',
        num_heads=8,
        head_dims=512,
        feedforward_channels=2048,
        dropout=0.1,
        loss=dict(
            type=DetachedAsymmetricLoss,
            gamma_pos=0.0,
            gamma_neg=4.0,
            clip=0.05,
            use_sigmoid=True)),
    teacher=dict(
        type=CLIPTeacher,
        model_name=clip_name,
        checkpoint=clip_checkpoint),
    # the text tower trains; train_text_encoder=False: a frozen teacher's
    # cached unit vectors instead (then set the teacher's cache_dir)
    train_text_encoder=True)

# -- schedule --------------------------------------------------------------
max_epochs = 80
lr = 1e-5
optim_wrapper = dict(
    type=OptimWrapper,
    optimizer=dict(type=AdamW, lr=lr, weight_decay=1e-4),
    paramwise_cfg=dict(flat_decay_mult=0.0))  # no decay on biases / norms
# mmengine's OneCycleLR, with a state dict that --resume can load
# weights-only
param_scheduler = [
    dict(
        type=CheckpointableOneCycleLR,
        eta_max=lr,
        pct_start=0.1,
        anneal_strategy='cos',
        div_factor=25.0,
        final_div_factor=1e4,
        by_epoch=True,
        begin=0,
        end=max_epochs,
        convert_to_iter_based=True),
]
train_cfg = dict(
    by_epoch=True, max_epochs=max_epochs, val_begin=11, val_interval=1)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=batch_size)

default_hooks.update(
    checkpoint=dict(type=CheckpointHook, interval=1, max_keep_ckpts=1,
                    save_best='multi-label/lt/mAP', rule='greater'))
custom_hooks = [
    dict(type=VocabularyHook),
    # the authors' ModelEma(decay=0.998): parameters and buffers
    dict(type=EMAHook, momentum=0.002, update_buffers=True),
]
