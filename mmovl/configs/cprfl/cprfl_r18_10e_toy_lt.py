# Copyright (c) mmovl contributors. All rights reserved.
# CPRFL on the toy world's long-tailed split: an mmpretrain ResNet-18 at half
# width (64 px images, a 2 x 2 last feature map; CPU-sized) trained from
# scratch on all 30 labels of
# annotations/instances_train_lt.json, prompts initialised from the toy
# CLIP's label embeddings; tested on instances_val.json, with the per-class
# training counts of the LT file giving the head / medium / tail mAP.
# The supervised twin is r18_linear_10e_toy_lt.py.
from mmengine.config import read_base

with read_base():
    from .._base_.datasets.toy_world_multilabel import *  # noqa: F401,F403
    from .._base_.default_runtime_cls import *  # noqa: F401,F403
    from .._base_.schedules.toy_adamw_10e import *  # noqa: F401,F403

from mmpretrain.models import AsymmetricLoss, ResNet

from mmovl.engine import VocabularyHook
from mmovl.evaluation import ZSLMultiLabelMetric
from mmovl.models import CPRFL, CLIPTeacher, CPRFLHead

num_classes = 30
feat_channels = 256  # the last stage of a half-width ResNet-18
lt_ann_file = 'annotations/instances_train_lt.json'
toy_teacher = 'data/toy_world/toy_clip.safetensors'
data_preprocessor.update(num_classes=num_classes)

# Long-tailed training set, whole vocabulary, no seen/unseen split.
train_dataloader.dataset.update(
    ann_file=lt_ann_file,
    data_prefix='train_lt',
    unseen_file=None,
    label_split='all')
val_dataloader.dataset.update(
    unseen_file=None, label_split='all', frequency_ann_file=lt_ann_file)
test_dataloader = val_dataloader
val_evaluator = dict(type=ZSLMultiLabelMetric, k=(3, 5))
test_evaluator = val_evaluator

model = dict(
    type=CPRFL,
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type=ResNet,
        depth=18,
        stem_channels=32,
        base_channels=32,
        out_indices=(3, )),
    head=dict(
        type=CPRFLHead,
        in_channels=feat_channels,
        embed_dims=128,
        num_heads=4,
        feedforward_channels=256,
        loss=dict(
            type=AsymmetricLoss,
            gamma_pos=0.0,
            gamma_neg=4.0,
            clip=0.05,
            use_sigmoid=True)),
    teacher=dict(
        type=CLIPTeacher, model_name='mmovl-toy-vit',
        checkpoint=toy_teacher))

custom_hooks = [dict(type=VocabularyHook)]
default_hooks.update(
    logger=dict(type=LoggerHook, interval=10),
    checkpoint=dict(type=CheckpointHook, interval=1, max_keep_ckpts=2))
randomness = dict(seed=0, deterministic=False)
