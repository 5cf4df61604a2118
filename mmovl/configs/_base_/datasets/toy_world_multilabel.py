# Copyright (c) mmovl contributors. All rights reserved.
# The toy world as a multi-label classification set (see
# tools/dataset_converters/make_toy_world.py). Training sees the seen labels
# only; `test_label_split` picks the vocabulary evaluated.
from mmcv.transforms import LoadImageFromFile
from mmengine.dataset import DefaultSampler
from mmpretrain.datasets import CenterCrop, PackInputs, RandomFlip, ResizeEdge

from mmovl.datasets import CocoMultiLabelDataset

data_root = 'data/toy_world'
unseen_file = 'annotations/unseen_labels.txt'
num_seen_classes = 24
# The generator draws 64 x 64 pictures; the test pipeline brings any image
# there (short side to 64, centre crop), as the real configs do at 224.
image_size = 64
batch_size = 64
num_workers = 2

data_preprocessor = dict(
    num_classes=num_seen_classes,
    mean=[127.5, 127.5, 127.5],
    std=[64.0, 64.0, 64.0],
    to_rgb=True)

train_pipeline = [
    dict(type=LoadImageFromFile),
    dict(type=RandomFlip, prob=0.5, direction='horizontal'),
    dict(type=PackInputs),
]
test_pipeline = [
    dict(type=LoadImageFromFile),
    dict(type=ResizeEdge, scale=image_size, edge='short'),
    dict(type=CenterCrop, crop_size=image_size),
    dict(type=PackInputs),
]

train_dataloader = dict(
    batch_size=batch_size,
    num_workers=num_workers,
    persistent_workers=True,
    sampler=dict(type=DefaultSampler, shuffle=True),
    dataset=dict(
        type=CocoMultiLabelDataset,
        data_root=data_root,
        ann_file='annotations/instances_train.json',
        data_prefix='train',
        unseen_file=unseen_file,
        label_split='seen',
        pipeline=train_pipeline))

val_dataloader = dict(
    batch_size=batch_size,
    num_workers=num_workers,
    persistent_workers=True,
    sampler=dict(type=DefaultSampler, shuffle=False),
    dataset=dict(
        type=CocoMultiLabelDataset,
        data_root=data_root,
        ann_file='annotations/instances_val.json',
        data_prefix='val',
        unseen_file=unseen_file,
        label_split='seen',
        pipeline=test_pipeline))
test_dataloader = val_dataloader
