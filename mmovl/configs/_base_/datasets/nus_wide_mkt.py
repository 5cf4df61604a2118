# Copyright (c) mmovl contributors. All rights reserved.
# NUS-WIDE in MKT's split: training on the 925 seen tags, testing on all
# 1,006 labels (GZSL; ZSL on the 81 unseen concepts comes from the same run).
# Prepare: python tools/dataset_converters/nus_wide_mkt_split.py data/nus_wide
from mmcv.transforms import LoadImageFromFile
from mmengine.dataset import DefaultSampler
from mmpretrain.datasets import (CenterCrop, PackInputs, RandAugment,
                                 RandomFlip, RandomResizedCrop, ResizeEdge)

from mmovl.datasets import NUSWideDataset
from mmovl.evaluation import ZSLMultiLabelMetric

data_root = 'data/nus_wide'
image_size = 224
batch_size = 64  # one process; MKT's code trains with 64 in all
num_workers = 8

# As MKT's utils/transforms.py (timm's create_transform): ImageNet's mean
# and std (0-255), for the student and the CLIP teacher alike, which share
# the inputs; not CLIP's own statistics.
data_preprocessor = dict(
    mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], to_rgb=True)
# timm's fill colour for RandAugment: ImageNet's mean, in BGR as loaded.
_fill = [round(x) for x in data_preprocessor['mean'][::-1]]

# Training: RandomResizedCrop 224 (bicubic) + horizontal flip + RandAugment
# 'rand-m9-mstd0.5-inc1' (2 ops, magnitude 9 of 10, std 0.5, timm's
# increasing policies), as timm's create_transform(is_training=True).
train_pipeline = [
    dict(type=LoadImageFromFile),
    dict(type=RandomResizedCrop, scale=image_size, backend='pillow',
         interpolation='bicubic'),
    dict(type=RandomFlip, prob=0.5, direction='horizontal'),
    dict(type=RandAugment, policies='timm_increasing', num_policies=2,
         total_level=10, magnitude_level=9, magnitude_std=0.5,
         hparams=dict(pad_val=_fill, interpolation='bicubic')),
    dict(type=PackInputs),
]
# Test: the shorter side to 256 (bicubic), then the central 224 x 224.
test_pipeline = [
    dict(type=LoadImageFromFile),
    dict(type=ResizeEdge, scale=256, edge='short', backend='pillow',
         interpolation='bicubic'),
    dict(type=CenterCrop, crop_size=image_size),
    dict(type=PackInputs),
]

train_dataloader = dict(
    batch_size=batch_size,
    num_workers=num_workers,
    persistent_workers=True,
    drop_last=True,  # as MKT's training loader
    sampler=dict(type=DefaultSampler, shuffle=True),
    dataset=dict(
        type=NUSWideDataset,
        data_root=data_root,
        data_prefix='Flickr',
        ann_file='annotations/nus_wide_mkt_train.npz',
        label_split='seen',
        missing='skip',
        pipeline=train_pipeline))
test_dataloader = dict(
    batch_size=batch_size,
    num_workers=num_workers,
    persistent_workers=True,
    sampler=dict(type=DefaultSampler, shuffle=False),
    dataset=dict(
        type=NUSWideDataset,
        data_root=data_root,
        data_prefix='Flickr',
        ann_file='annotations/nus_wide_mkt_test.npz',
        label_split='all',
        missing='skip',
        pipeline=test_pipeline))
val_dataloader = test_dataloader
# MKT's evaluation: ZSL with the 81 unseen labels alone as the vocabulary,
# over all test images; a label without a positive scores AP 0 (its
# compute_AP; no NUS-WIDE label lacks one).
val_evaluator = dict(
    type=ZSLMultiLabelMetric,
    k=(3, 5),
    zsl_protocol='unseen_vocabulary',
    empty_label_ap='zero')
test_evaluator = val_evaluator
