# Copyright (c) mmovl contributors. All rights reserved.
# Supervised multi-label baseline: a tiny mmpretrain ViT with a linear
# sigmoid head, trained and tested on the toy world's seen labels. It cannot
# name unseen labels at all; the open-vocabulary methods are measured
# against it.
from mmengine.config import read_base

with read_base():
    from .._base_.default_runtime_cls import *  # noqa: F401,F403
    from .._base_.datasets.toy_world_multilabel import *  # noqa: F401,F403
    from .._base_.schedules.toy_adamw_10e import *  # noqa: F401,F403

from mmpretrain.evaluation import AveragePrecision
from mmpretrain.models import (CrossEntropyLoss, ImageClassifier,
                               MultiLabelLinearClsHead, VisionTransformer)

embed_dims = 96
model = dict(
    type=ImageClassifier,
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type=VisionTransformer,
        arch=dict(
            embed_dims=embed_dims,
            num_layers=4,
            num_heads=3,
            feedforward_channels=4 * embed_dims),
        img_size=64,
        patch_size=8,
        out_type='cls_token'),
    head=dict(
        type=MultiLabelLinearClsHead,
        num_classes=num_seen_classes,
        in_channels=embed_dims,
        loss=dict(type=CrossEntropyLoss, use_sigmoid=True)))

val_evaluator = dict(type=AveragePrecision)
test_evaluator = val_evaluator

default_hooks.update(
    logger=dict(type=LoggerHook, interval=10),
    checkpoint=dict(type=CheckpointHook, interval=1, max_keep_ckpts=2))
randomness = dict(seed=0, deterministic=False)
