# Copyright (c) mmovl contributors. All rights reserved.
# NUS-WIDE in MKT's split: training on the 925 seen tags, testing on all
# 1,006 labels (GZSL; ZSL on the 81 unseen concepts comes from the same run).
# Prepare: python tools/dataset_converters/nus_wide_mkt_split.py data/nus_wide
from mmengine.config import read_base

with read_base():
    from ..clip_preprocessor import *  # noqa: F401,F403

from mmcv.transforms import LoadImageFromFile
from mmengine.dataset import DefaultSampler
from mmpretrain.datasets import PackInputs, RandomFlip, Resize

from mmovl.datasets import NUSWideDataset
from mmovl.evaluation import ZSLMultiLabelMetric

data_root = 'data/nus_wide'
image_size = 224
batch_size = 64  # one process; MKT's code trains with 64 in all
num_workers = 8

# CLIP's image statistics (0-255): student and teacher share the inputs.
data_preprocessor = dict(**clip_data_preprocessor)

train_pipeline = [
    dict(type=LoadImageFromFile),
    dict(type=Resize, scale=(image_size, image_size)),
    dict(type=RandomFlip, prob=0.5, direction='horizontal'),
    dict(type=PackInputs),
]
test_pipeline = [
    dict(type=LoadImageFromFile),
    dict(type=Resize, scale=(image_size, image_size)),
    dict(type=PackInputs),
]

train_dataloader = dict(
    batch_size=batch_size,
    num_workers=num_workers,
    persistent_workers=True,
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
val_evaluator = dict(type=ZSLMultiLabelMetric, k=(3, 5))
test_evaluator = val_evaluator
