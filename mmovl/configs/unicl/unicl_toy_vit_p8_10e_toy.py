# Copyright (c) mmovl contributors. All rights reserved.
# Pretrains the toy CLIP teacher ('mmovl-toy-vit', an open_clip ViT) with
# UniCL on the toy world, in a few CPU minutes. Export it for CLIPTeacher:
#   python tools/model_converters/unicl_to_open_clip.py \
#       work_dirs/unicl_toy_vit_p8_10e_toy/epoch_10.pth toy_clip.safetensors
from mmengine.config import read_base

with read_base():
    from .._base_.datasets.toy_world_unicl import *  # noqa: F401,F403
    from .._base_.default_runtime_cls import *  # noqa: F401,F403

from mmengine.optim import CosineAnnealingLR, LinearLR, OptimWrapper
from torch.optim import AdamW

from mmovl.engine import VocabularyHook
from mmovl.models import UniCL, UniCLLoss

model = dict(
    type=UniCL,
    model_name='mmovl-toy-vit',
    loss=dict(type=UniCLLoss),
    data_preprocessor=data_preprocessor)

max_epochs = 10
# CLIP's optimiser settings; no weight decay on gains, biases, embeddings
# and the temperature.
optim_wrapper = dict(
    type=OptimWrapper,
    optimizer=dict(
        type=AdamW, lr=2e-3, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.1),
    paramwise_cfg=dict(
        norm_decay_mult=0.0,
        bias_decay_mult=0.0,
        custom_keys={
            'logit_scale': dict(decay_mult=0.0),
            'positional_embedding': dict(decay_mult=0.0),
            'class_embedding': dict(decay_mult=0.0),
            'token_embedding': dict(decay_mult=0.0),
        }),
    clip_grad=dict(max_norm=5.0))
param_scheduler = [
    dict(type=LinearLR, start_factor=0.01, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type=CosineAnnealingLR, eta_min=1e-5, by_epoch=True, begin=1,
         end=max_epochs, convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=5)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=128)

custom_hooks = [dict(type=VocabularyHook, train=False)]
default_hooks.update(
    logger=dict(type=LoggerHook, interval=20),
    checkpoint=dict(type=CheckpointHook, interval=5, max_keep_ckpts=2))
randomness = dict(seed=0, deterministic=False)
