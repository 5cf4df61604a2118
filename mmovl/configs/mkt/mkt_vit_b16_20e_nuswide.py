# Copyright (c) mmovl contributors. All rights reserved.
# MKT stage 1 on NUS-WIDE, as the official code trains it: ViT-B/16 student
# initialised from CLIP's image encoder (first 10 blocks frozen), two-stream
# head starting from CLIP's visual projection, top-16 local pooling, rank
# loss + L1 distillation (weight 1) over the images with a positive, AdamW
# with layer-wise lr decay 0.65 and no weight decay on 1-D parameters, lr
# 1e-3 for batch 64, 2 warm-up epochs from lr 0, cosine to 1e-6 (scaled per
# layer), 20 epochs, seed 42, validation every epoch. Inputs as its timm
# transforms (see the data config). Side by side with the official code:
# configs/mkt/README.md.
#
# CLIP weights: OpenAI's ViT-B/16 as a plain open_clip state dict, e.g.
# `open_clip_model.safetensors` of timm/vit_base_patch16_clip_224.openai on
# the Hugging Face hub, saved as checkpoints/clip_vit_b16_openai.safetensors.
from mmengine.config import read_base

with read_base():
    from .._base_.datasets.nus_wide_mkt import *  # noqa: F401,F403
    from .._base_.default_runtime_cls import *  # noqa: F401,F403

from mmengine.optim import OptimWrapper
from mmpretrain.engine.optimizers import \
    LearningRateDecayOptimWrapperConstructor
from torch.optim import AdamW

from mmovl.engine import (ClosedFormCosineAnnealingLR, LinearWarmupLR,
                          VocabularyHook)
from mmovl.models import (MKT, CLIPTeacher, OpenCLIPViT, RankLoss,
                          TwoStreamHead)

clip_name = 'ViT-B-16-quickgelu'  # OpenAI's weights use QuickGELU
clip_checkpoint = 'checkpoints/clip_vit_b16_openai.safetensors'

model = dict(
    type=MKT,
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type=OpenCLIPViT,
        model_name=clip_name,
        checkpoint=clip_checkpoint,
        frozen_stages=10),
    head=dict(
        type=TwoStreamHead,
        topk=16,  # the paper's ablation picks 18
        normalize_embeds=False,
        loss=dict(type=RankLoss)),
    teacher=dict(
        type=CLIPTeacher,
        model_name=clip_name,
        checkpoint=clip_checkpoint,
        cache_dir='data/nus_wide/label_embeds'),
    distill_weight=1.0,
    distill_images='with_positive')

max_epochs = 20
warmup_epochs = 2
optim_wrapper = dict(
    type=OptimWrapper,
    optimizer=dict(type=AdamW, lr=1e-3, weight_decay=0.05),
    constructor=LearningRateDecayOptimWrapperConstructor,
    # As the official param_groups_lrd: no weight decay on any 1-D parameter
    # (biases, attention in_proj_bias, norms, the class embedding).
    paramwise_cfg=dict(layer_decay_rate=0.65, flat_decay_mult=0.0))
# Per iteration as MKT's utils/lr_sched.py: lr * t / warm-up from 0, then a
# half-cycle cosine from the full lr to 1e-6 x each group's layer scale.
param_scheduler = [
    dict(type=LinearWarmupLR, start_factor=0.0, by_epoch=True, begin=0,
         end=warmup_epochs, convert_to_iter_based=True),
    dict(type=ClosedFormCosineAnnealingLR, eta_min_ratio=1e-6 / 1e-3,
         by_epoch=True, begin=warmup_epochs, end=max_epochs,
         convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=1)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=64)

randomness = dict(seed=42, deterministic=False)

custom_hooks = [dict(type=VocabularyHook)]
default_hooks.update(checkpoint=dict(type=CheckpointHook, interval=1,
                                     max_keep_ckpts=3))
