# Copyright (c) mmovl contributors. All rights reserved.
# Open-vocabulary COCO (48 base / 17 novel categories), as in OVR-CNN and
# ViLD. Make the two annotation files with
#   python tools/dataset_converters/coco_ov_split.py data/coco
# (mmdet's coco2ovd.py writes the same names). Training: base boxes only;
# testing: the 65 categories, OVCocoMetric reports base / novel (box) AP and
# AP50 (novel AP50 is the benchmark's headline).
from mmcv.transforms import LoadImageFromFile
from mmdet.datasets import AspectRatioBatchSampler, CocoDataset
from mmdet.datasets.transforms import (LoadAnnotations, PackDetInputs,
                                       RandomFlip, Resize)
from mmdet.evaluation import OVCocoMetric
from mmengine.dataset import DefaultSampler

from mmovl.datasets.coco_ov import (COCO_OV_BASE_CLASSES, COCO_OV_CLASSES,
                                    COCO_OV_NOVEL_CLASSES)
from mmovl.datasets.transforms import LoadCLIPProposalEmbeds, PackViLDInputs

data_root = 'data/coco/'
# Written by tools/misc/precompute_vild_embeds.py; a child config that moves
# it also sets train_dataloader.dataset.pipeline[2].store_dir.
clip_embeds_dir = data_root + 'vild_embeds/train2017'
batch_size = 2
num_workers = 2
backend_args = None

# CocoDataset labels in the order the annotation file lists the categories
# (by id in COCO's files); each tuple follows it.
train_metainfo = dict(
    classes=COCO_OV_BASE_CLASSES, base_classes=COCO_OV_BASE_CLASSES,
    novel_classes=COCO_OV_NOVEL_CLASSES)
test_metainfo = dict(
    classes=COCO_OV_CLASSES, base_classes=COCO_OV_BASE_CLASSES,
    novel_classes=COCO_OV_NOVEL_CLASSES)

# mmdet's single-scale COCO recipe. The stored proposals follow any of
# mmdet's geometric transforms (PackViLDInputs maps them with the recorded
# homography), so the LVIS base's large-scale jitter also fits here.
train_pipeline = [
    dict(type=LoadImageFromFile, backend_args=backend_args),
    dict(type=LoadAnnotations, with_bbox=True, with_mask=True),
    dict(type=LoadCLIPProposalEmbeds, store_dir=clip_embeds_dir),
    dict(type=Resize, scale=(1333, 800), keep_ratio=True),
    dict(type=RandomFlip, prob=0.5),
    dict(type=PackViLDInputs),
]
# ViLD-text in one line of a child config:
#   train_dataloader.dataset.pipeline = train_pipeline_text_only
train_pipeline_text_only = [
    dict(type=LoadImageFromFile, backend_args=backend_args),
    dict(type=LoadAnnotations, with_bbox=True, with_mask=True),
    dict(type=Resize, scale=(1333, 800), keep_ratio=True),
    dict(type=RandomFlip, prob=0.5),
    dict(type=PackViLDInputs),
]
test_pipeline = [
    dict(type=LoadImageFromFile, backend_args=backend_args),
    dict(type=Resize, scale=(1333, 800), keep_ratio=True),
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
        ann_file='annotations/instances_train2017_seen_2.json',
        data_prefix=dict(img='train2017/'),
        metainfo=train_metainfo,
        filter_cfg=dict(filter_empty_gt=True, min_size=32),
        pipeline=train_pipeline,
        backend_args=backend_args))
val_dataloader = dict(
    batch_size=1,
    num_workers=num_workers,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type=DefaultSampler, shuffle=False),
    dataset=dict(
        type=CocoDataset,
        data_root=data_root,
        ann_file='annotations/instances_val2017_all_2.json',
        data_prefix=dict(img='val2017/'),
        metainfo=test_metainfo,
        test_mode=True,
        pipeline=test_pipeline,
        backend_args=backend_args))
test_dataloader = val_dataloader

val_evaluator = dict(
    type=OVCocoMetric,
    ann_file=data_root + 'annotations/instances_val2017_all_2.json',
    metric='bbox',
    format_only=False,
    backend_args=backend_args)
test_evaluator = val_evaluator
