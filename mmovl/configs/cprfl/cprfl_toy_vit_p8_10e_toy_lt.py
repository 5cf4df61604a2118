# Copyright (c) mmovl contributors. All rights reserved.
# CPRFL on the toy world's long-tailed split. As the paper fine-tunes an
# ImageNet-pretrained ResNet-101, the toy fine-tunes a pretrained tower: the
# toy CLIP's image encoder (its last of 4 blocks trained; the visual tokens
# are the CLS token and the 64 patch tokens after ln_post, width 128: a ViT's
# patch tokens alone carry less of what CLIP learned, since its contrastive
# loss reads the CLS token only), on all 30 labels of
# annotations/instances_train_lt.json, with the prompts initialised from the
# same toy CLIP's label embeddings. Tested on instances_val.json; the
# per-class counts of the LT file give the head / medium / tail mAP.
# The head is the authors' model at toy width (d = 128): their VSI block
# (pre-norm, no residuals, 8 heads of d / 4), PI hidden d / 2, FFN d, the
# toy CLIP's text tower trained with the model (at the backbone's 0.1x
# learning rate, both being pretrained towers), ASL with a constant
# focusing weight, PyTorch's default init. The schedule is the toy's.
# mmovl's earlier variant (a standard encoder layer over a frozen teacher's
# embeddings) is cprfl-enclayer_toy_vit_p8_10e_toy_lt.py; the supervised
# twin (same backbone, linear head) is
# baseline/toy_vit_p8_linear_10e_toy_lt.py; bench/bench_cprfl_toy.py runs all
# three.
from mmengine.config import read_base

with read_base():
    from .._base_.clip_preprocessor import *  # noqa: F401,F403
    from .._base_.datasets.toy_world_multilabel import *  # noqa: F401,F403
    from .._base_.default_runtime_cls import *  # noqa: F401,F403
    from .._base_.schedules.toy_adamw_10e import *  # noqa: F401,F403

from mmovl.engine import VocabularyHook
from mmovl.evaluation import ZSLMultiLabelMetric
from mmovl.models import (CPRFL, CLIPTeacher, CPRFLHead,
                          DetachedAsymmetricLoss, OpenCLIPViT)

num_classes = 30
toy_clip = 'mmovl-toy-vit'
toy_teacher = 'data/toy_world/toy_clip.safetensors'
lt_ann_file = 'annotations/instances_train_lt.json'
data_preprocessor = dict(**clip_data_preprocessor, num_classes=num_classes)

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

backbone = dict(
    type=OpenCLIPViT,
    model_name=toy_clip,
    checkpoint=toy_teacher,
    frozen_stages=3,
    out_type='cls_patches')
model = dict(
    type=CPRFL,
    data_preprocessor=data_preprocessor,
    backbone=backbone,
    head=dict(
        type=CPRFLHead,
        in_channels=128,
        embed_dims=128,
        tau=0.5,
        vsi_type='cprfl',
        num_heads=8,
        head_dims=32,
        feedforward_channels=128,
        dropout=0.1,
        loss=dict(
            type=DetachedAsymmetricLoss,
            gamma_pos=0.0,
            gamma_neg=4.0,
            clip=0.05,
            use_sigmoid=True)),
    teacher=dict(type=CLIPTeacher, model_name=toy_clip,
                 checkpoint=toy_teacher),
    train_text_encoder=True)

# The pretrained towers at a tenth of the new head's learning rate.
optim_wrapper.update(
    paramwise_cfg=dict(custom_keys={
        'backbone': dict(lr_mult=0.1),
        'text_encoder': dict(lr_mult=0.1)
    }))
custom_hooks = [dict(type=VocabularyHook)]
default_hooks.update(
    logger=dict(type=LoggerHook, interval=10),
    checkpoint=dict(type=CheckpointHook, interval=1, max_keep_ckpts=2))
randomness = dict(seed=0, deterministic=False)
