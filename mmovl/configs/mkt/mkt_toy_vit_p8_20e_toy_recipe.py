# Copyright (c) mmovl contributors. All rights reserved.
# MKT stage 1 on the toy world with the optimisation of the ViT-B/16 config
# (the authors' code): layer-wise lr decay 0.65, no weight decay on 1-D
# parameters, 2 warm-up epochs from lr 0, closed-form cosine, 20 epochs,
# validation every epoch. bench/README.md has its figures (the toy
# schedule's 10 epochs give the same ZSL mAP).
from mmengine.config import read_base

with read_base():
    from .mkt_toy_vit_p8_10e_toy import *  # noqa: F401,F403

from mmengine.optim import OptimWrapper
from mmpretrain.engine.optimizers import \
    LearningRateDecayOptimWrapperConstructor
from torch.optim import AdamW

from mmovl.engine import ClosedFormCosineAnnealingLR, LinearWarmupLR

max_epochs = 20
warmup_epochs = 2
optim_wrapper = dict(
    type=OptimWrapper,
    optimizer=dict(type=AdamW, lr=1e-3, weight_decay=0.05),
    constructor=LearningRateDecayOptimWrapperConstructor,
    paramwise_cfg=dict(layer_decay_rate=0.65, flat_decay_mult=0.0))
param_scheduler = [
    dict(type=LinearWarmupLR, start_factor=0.0, by_epoch=True, begin=0,
         end=warmup_epochs, convert_to_iter_based=True),
    dict(type=ClosedFormCosineAnnealingLR, eta_min_ratio=1e-3,
         by_epoch=True, begin=warmup_epochs, end=max_epochs,
         convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=1)
