# Copyright (c) mmovl contributors. All rights reserved.
# The ViLD authors' LVIS schedule: batch 256, 180k iterations, SGD momentum
# 0.9, lr 0.32 with a 1k-iteration linear warm-up from 0.0032, x0.1 at 162k
# and 171k, weight decay 4e-5 on kernels only (regularization_variable_regex
# '.*(kernel|weight):0$': conv and fc weights, the background embedding; no
# biases, no BN parameters).
from mmengine.hooks import CheckpointHook
from mmengine.optim import LinearLR, MultiStepLR, OptimWrapper
from mmengine.runner import IterBasedTrainLoop, TestLoop, ValLoop
from torch.optim import SGD

max_iters = 180000
train_cfg = dict(
    type=IterBasedTrainLoop, max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type=ValLoop)
test_cfg = dict(type=TestLoop)

optim_wrapper = dict(
    type=OptimWrapper,
    optimizer=dict(type=SGD, lr=0.32, momentum=0.9, weight_decay=4e-5),
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0))
param_scheduler = [
    dict(type=LinearLR, start_factor=0.01, by_epoch=False, begin=0,
         end=1000),
    dict(type=MultiStepLR, by_epoch=False, begin=0, end=max_iters,
         milestones=[162000, 171000], gamma=0.1),
]
# The lr above is for 256 images a step.
auto_scale_lr = dict(enable=False, base_batch_size=256)
checkpoint_hook = dict(
    type=CheckpointHook, by_epoch=False, interval=10000, max_keep_ckpts=3)
