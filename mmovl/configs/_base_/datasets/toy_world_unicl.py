# Copyright (c) mmovl contributors. All rights reserved.
# The toy world as image-text-label triplets for UniCL: every object crop is
# image-label data (its label name through a prompt), every image with its
# caption is image-text data. All 30 labels are used, as a web-scale CLIP
# would have seen every concept. Validation is zero-shot multi-label
# classification of the test images over all labels.
from mmengine.config import read_base

with read_base():
    from ..clip_preprocessor import *  # noqa: F401,F403

from mmcv.transforms import LoadImageFromFile
from mmengine.dataset import DefaultSampler
from mmpretrain.datasets import (CenterCrop, PackInputs, RandomFlip, Resize,
                                 ResizeEdge)

from mmovl.datasets import (CocoCaptionPairs, CocoMultiLabelDataset,
                            CocoObjectCrops, UniCLDataset)
from mmovl.datasets.transforms import CropBox, PromptText
from mmovl.evaluation import ZSLMultiLabelMetric

data_root = 'data/toy_world'
image_size = 64
batch_size = 128
num_workers = 2

# open_clip's (OpenAI's) image statistics, on the 0-255 scale: the exported
# teacher is fed the same way (CLIPTeacher.mean / std).
data_preprocessor = dict(**clip_data_preprocessor)

train_pipeline = [
    dict(type=LoadImageFromFile),
    dict(type=CropBox, scale_range=(1.0, 3.0)),
    dict(type=Resize, scale=(image_size, image_size)),
    dict(type=RandomFlip, prob=0.5, direction='horizontal'),
    dict(type=PromptText, templates='ensemble'),
    dict(type=PackInputs, algorithm_keys=('text', )),
]
test_pipeline = [
    dict(type=LoadImageFromFile),
    # any image to the model's size; a no-op on the generated 64 px ones
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
        type=UniCLDataset,
        data_root=data_root,
        label_sources=[
            dict(
                type=CocoObjectCrops,
                ann_file='annotations/instances_train.json',
                data_prefix='train')
        ],
        text_sources=[
            dict(
                type=CocoCaptionPairs,
                ann_file='annotations/captions_train.json',
                data_prefix='train')
        ],
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
        unseen_file='annotations/unseen_labels.txt',
        label_split='all',
        pipeline=test_pipeline))
test_dataloader = val_dataloader
# UniCL's score of a label is a cosine similarity, which does not depend on
# the other labels: its unseen columns are its scores with the unseen labels
# alone (ZSL over all test images, as MKT's protocol).
val_evaluator = dict(type=ZSLMultiLabelMetric, k=(3, 5), zsl_protocol='sliced')
test_evaluator = val_evaluator
