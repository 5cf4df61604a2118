# Copyright (c) mmovl contributors. All rights reserved.
# The toy world as an open-vocabulary detection set (ViLD). Training sees
# the boxes of the 24 seen labels only: mmdet's CocoDataset drops every
# annotation whose category is not in metainfo['classes'], so unseen shapes
# are background, never relabelled. Testing scores all 30 labels and
# OVCocoMetric reports base (seen) and novel (unseen) box AP.
# The 64x64 images are upscaled to 128x128 so that the smallest shapes
# still cover a few cells of the detector's coarsest feature maps.
from mmcv.transforms import LoadImageFromFile
from mmdet.datasets import AspectRatioBatchSampler, CocoDataset
from mmdet.datasets.transforms import (LoadAnnotations, PackDetInputs,
                                       RandomFlip, Resize)
from mmdet.evaluation import OVCocoMetric
from mmengine.dataset import DefaultSampler

from mmovl.datasets import LABELS, SEEN_LABELS, UNSEEN_LABELS
from mmovl.datasets.transforms import LoadCLIPProposalEmbeds, PackViLDInputs

data_root = 'data/toy_world/'
# The proposal-embedding store of the training images, written by
# tools/misc/precompute_vild_embeds.py. A child config that moves it also
# sets train_dataloader.dataset.pipeline[2].store_dir.
clip_embeds_dir = data_root + 'vild_embeds/train'
image_scale = (128, 128)
batch_size = 16
num_workers = 2
backend_args = None

# CocoDataset labels in the order the annotation file lists the categories,
# which LABELS (and so SEEN_LABELS) follows.
train_metainfo = dict(
    classes=SEEN_LABELS, base_classes=SEEN_LABELS,
    novel_classes=UNSEEN_LABELS)
test_metainfo = dict(
    classes=LABELS, base_classes=SEEN_LABELS, novel_classes=UNSEEN_LABELS)

train_pipeline = [
    dict(type=LoadImageFromFile, backend_args=backend_args),
    dict(type=LoadAnnotations, with_bbox=True, with_mask=True),
    dict(type=LoadCLIPProposalEmbeds, store_dir=clip_embeds_dir),
    dict(type=Resize, scale=image_scale, keep_ratio=True),
    dict(type=RandomFlip, prob=0.5),
    dict(type=PackViLDInputs),
]
# ViLD-text (no image distillation) in one line of a child config:
#   train_dataloader.dataset.pipeline = train_pipeline_text_only
train_pipeline_text_only = [
    dict(type=LoadImageFromFile, backend_args=backend_args),
    dict(type=LoadAnnotations, with_bbox=True, with_mask=True),
    dict(type=Resize, scale=image_scale, keep_ratio=True),
    dict(type=RandomFlip, prob=0.5),
    dict(type=PackViLDInputs),
]
test_pipeline = [
    dict(type=LoadImageFromFile, backend_args=backend_args),
    dict(type=Resize, scale=image_scale, keep_ratio=True),
    dict(type=LoadAnnotations, with_bbox=True),
    dict(
        type=PackDetInputs,
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor')),
]

train_dataloader = dict(
    batch_size=batch_size,
    num_workers=num_workers,
    persistent_workers=True,
    sampler=dict(type=DefaultSampler, shuffle=True),
    batch_sampler=dict(type=AspectRatioBatchSampler),
    dataset=dict(
        type=CocoDataset,
        data_root=data_root,
        ann_file='annotations/instances_train.json',
        data_prefix=dict(img='train/'),
        metainfo=train_metainfo,
        filter_cfg=dict(filter_empty_gt=True, min_size=0),
        pipeline=train_pipeline,
        backend_args=backend_args))
val_dataloader = dict(
    batch_size=batch_size,
    num_workers=num_workers,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type=DefaultSampler, shuffle=False),
    dataset=dict(
        type=CocoDataset,
        data_root=data_root,
        ann_file='annotations/instances_val.json',
        data_prefix=dict(img='val/'),
        metainfo=test_metainfo,
        test_mode=True,
        pipeline=test_pipeline,
        backend_args=backend_args))
test_dataloader = val_dataloader

val_evaluator = dict(
    type=OVCocoMetric,
    ann_file=data_root + 'annotations/instances_val.json',
    metric='bbox',
    backend_args=backend_args)
test_evaluator = val_evaluator
