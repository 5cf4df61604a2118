# Copyright (c) mmovl contributors. All rights reserved.
# ViLD-ensemble on the toy world (CPU): a thin ResNet-18 FPN detector
# trained on the 24 seen labels with ViLD-text and ViLD-image (the toy
# CLIP's embeddings of precomputed proposals), evaluated on all 30 labels,
# the 6 unseen ones marked novel.
from mmengine.config import read_base

with read_base():
    from .._base_.datasets.toy_world_det import *  # noqa: F401,F403
    from .._base_.default_runtime_det import *  # noqa: F401,F403
    from .._base_.models.vild_toy_r18_fpn import *  # noqa: F401,F403

from mmengine.hooks import CheckpointHook, LoggerHook
from mmengine.optim import LinearLR, MultiStepLR, OptimWrapper
from mmengine.runner import EpochBasedTrainLoop, TestLoop, ValLoop
from torch.optim import AdamW

from mmovl.engine import DetVocabularyHook

max_epochs = 6
train_cfg = dict(
    type=EpochBasedTrainLoop, max_epochs=max_epochs, val_interval=max_epochs)
val_cfg = dict(type=ValLoop)
test_cfg = dict(type=TestLoop)
optim_wrapper = dict(
    type=OptimWrapper,
    optimizer=dict(type=AdamW, lr=1e-3, weight_decay=0.05),
    clip_grad=dict(max_norm=10.0))
param_scheduler = [
    dict(type=LinearLR, start_factor=0.01, by_epoch=False, begin=0, end=100),
    dict(type=MultiStepLR, by_epoch=True, begin=0, end=max_epochs,
         milestones=[4, 5], gamma=0.1),
]
# The lr above is for 16 images a step.
auto_scale_lr = dict(enable=False, base_batch_size=16)

custom_hooks = [dict(type=DetVocabularyHook)]
default_hooks.update(
    logger=dict(type=LoggerHook, interval=20),
    checkpoint=dict(type=CheckpointHook, interval=1, max_keep_ckpts=2))
randomness = dict(seed=0, deterministic=False)
