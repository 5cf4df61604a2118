# Copyright (c) mmovl contributors. All rights reserved.
# LVIS v1 open-vocabulary split of ViLD: base = frequent + common (866
# categories), novel = rare (337). Training reads the official
# lvis_v1_train.json with class_split='base' (rare annotations dropped on
# load, no converted file needed); testing scores all 1203 categories with
# LVISMetric, whose APr is the benchmark's headline (as mmovl's
# CompatLVISMetric, which runs lvis-api 0.5.3 on numpy >= 1.24). Needs
# `pip install lvis`.
# ViLD trains Mask R-CNN, hence the masks and the segm metric; a box-only
# model sets val_evaluator.metric = ['bbox'].
from mmcv.transforms import LoadImageFromFile, RandomResize
from mmdet.datasets.transforms import (FilterAnnotations, LoadAnnotations,
                                       PackDetInputs, RandomCrop,
                                       RandomFlip, Resize)
from mmengine.dataset import ClassBalancedDataset, DefaultSampler

from mmovl.datasets import LVISV1OVDataset
from mmovl.datasets.transforms import LoadCLIPProposalEmbeds, PackViLDInputs
from mmovl.evaluation import CompatLVISMetric

data_root = 'data/lvis_v1/'
# Written by tools/misc/precompute_vild_embeds.py; a child config that moves
# it also sets train_dataloader.dataset.pipeline[2].store_dir.
clip_embeds_dir = data_root + 'vild_embeds/train'
batch_size = 2
num_workers = 2
backend_args = None

# The authors' recipe: large-scale jitter. Each image is resized to a
# random 0.1x-2.0x of 1024 (long side), a 1024 x 1024 window is cropped (or
# less, from small images) and flipped half the time; the data preprocessor
# pads each batch.
# mmdet's geometric transforms record a homography, with which
# PackViLDInputs maps the stored proposals into the crop, clipped, and keeps
# them all (the authors' code; PackViLDInputs(min_visible=0.5) drops those
# cut to less than half).
image_size = (1024, 1024)
jitter_steps = [
    dict(type=RandomResize, scale=image_size, ratio_range=(0.1, 2.0),
         keep_ratio=True, resize_type=Resize),
    dict(type=RandomCrop, crop_type='absolute_range', crop_size=image_size,
         recompute_bbox=True, allow_negative_crop=True),
    dict(type=FilterAnnotations, min_gt_bbox_wh=(1e-2, 1e-2)),
    dict(type=RandomFlip, prob=0.5),
]
train_pipeline = [
    dict(type=LoadImageFromFile, backend_args=backend_args),
    dict(type=LoadAnnotations, with_bbox=True, with_mask=True),
    dict(type=LoadCLIPProposalEmbeds, store_dir=clip_embeds_dir),
    *jitter_steps,
    dict(type=PackViLDInputs),
]
# ViLD-text in one line of a child config:
#   train_dataloader.dataset.pipeline = train_pipeline_text_only
train_pipeline_text_only = [
    dict(type=LoadImageFromFile, backend_args=backend_args),
    dict(type=LoadAnnotations, with_bbox=True, with_mask=True),
    *jitter_steps,
    dict(type=PackViLDInputs),
]
# The authors' test scale: long side 1024 (the ViLD configs' data
# preprocessor pads every batch to 1024 x 1024 with zeros after
# normalisation, as the authors).
test_pipeline = [
    dict(type=LoadImageFromFile, backend_args=backend_args),
    dict(type=Resize, scale=image_size, keep_ratio=True),
    dict(type=LoadAnnotations, with_bbox=True, with_mask=True),
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
    # No repeat-factor sampling (the authors' code; DetPro and mmdet's LVIS
    # configs add it). As an option, in a child config:
    #   train_dataloader.dataset = dict(rfs_dataset,
    #                                   dataset=train_dataloader.dataset)
    dataset=dict(
        type=LVISV1OVDataset,
        data_root=data_root,
        ann_file='annotations/lvis_v1_train.json',
        data_prefix=dict(img=''),
        class_split='base',
        filter_cfg=dict(filter_empty_gt=True, min_size=32),
        pipeline=train_pipeline,
        backend_args=backend_args))
rfs_dataset = dict(type=ClassBalancedDataset, oversample_thr=1e-3)
val_dataloader = dict(
    batch_size=1,
    num_workers=num_workers,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type=DefaultSampler, shuffle=False),
    dataset=dict(
        type=LVISV1OVDataset,
        data_root=data_root,
        ann_file='annotations/lvis_v1_val.json',
        data_prefix=dict(img=''),
        class_split='all',
        test_mode=True,
        pipeline=test_pipeline,
        backend_args=backend_args))
test_dataloader = val_dataloader

val_evaluator = dict(
    type=CompatLVISMetric,
    ann_file=data_root + 'annotations/lvis_v1_val.json',
    metric=['bbox', 'segm'],
    backend_args=backend_args)
test_evaluator = val_evaluator
