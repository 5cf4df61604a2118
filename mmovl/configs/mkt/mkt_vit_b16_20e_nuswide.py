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
    from .._base_.schedules.mkt_adamw_lrd_20e import *  # noqa: F401,F403

from mmovl.engine import VocabularyHook
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

randomness = dict(seed=42, deterministic=False)

custom_hooks = [dict(type=VocabularyHook)]
default_hooks.update(checkpoint=dict(type=CheckpointHook, interval=1,
                                     max_keep_ckpts=3))
