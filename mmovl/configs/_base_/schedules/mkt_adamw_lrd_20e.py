# Copyright (c) mmovl contributors. All rights reserved.
# MKT stage 1's optimisation, as the official code: AdamW with layer-wise lr
# decay 0.65 and no weight decay on 1-D parameters, lr 1e-3 for batch 64,
# 2 warm-up epochs from lr 0, cosine to 1e-6 (scaled per layer), 20 epochs,
# validation every epoch.
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
