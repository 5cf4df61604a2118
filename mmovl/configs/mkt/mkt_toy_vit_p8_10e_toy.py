# Copyright (c) mmovl contributors. All rights reserved.
# MKT stage 1 on the toy world: the student is the toy CLIP's own ViT,
# trained on the 24 seen labels with the rank loss and distillation toward
# the frozen toy CLIP; tested zero-shot on the 6 unseen labels (ZSL) and on
# all 30 (GZSL).
from mmengine.config import read_base

with read_base():
    from .._base_.datasets.toy_world_zsl import *  # noqa: F401,F403
    from .._base_.default_runtime_cls import *  # noqa: F401,F403
    from .._base_.schedules.toy_adamw_10e import *  # noqa: F401,F403

from mmovl.engine import VocabularyHook
from mmovl.models import (MKT, CLIPTeacher, OpenCLIPViT, RankLoss,
                          TwoStreamHead)

clip_name = 'mmovl-toy-vit'
model = dict(
    type=MKT,
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type=OpenCLIPViT,
        model_name=clip_name,
        checkpoint=toy_teacher,
        # the official code freezes 10 of ViT-B/16's 12 blocks; the toy ViT
        # has 4 and keeps the same ratio
        frozen_stages=3),
    # k: 16 of ViT-B/16's 196 patches in the code; 8 of the toy's 64
    head=dict(
        type=TwoStreamHead,
        topk=8,
        normalize_embeds=False,  # raw CLIP features, as the official code
        loss=dict(type=RankLoss)),
    teacher=dict(type=CLIPTeacher, model_name=clip_name,
                 checkpoint=toy_teacher),
    distill_weight=1.0)

optim_wrapper.optimizer.update(lr=5e-4)
custom_hooks = [dict(type=VocabularyHook)]
default_hooks.update(
    logger=dict(type=LoggerHook, interval=10),
    checkpoint=dict(type=CheckpointHook, interval=1, max_keep_ckpts=2))
randomness = dict(seed=0, deterministic=False)
