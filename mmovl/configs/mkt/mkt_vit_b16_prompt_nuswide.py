# Copyright (c) mmovl contributors. All rights reserved.
# MKT stage 2 on NUS-WIDE, as the official train_nus_second_stage.py: the
# prompt 'There is a {} in the scene' with every token that is not the
# name learned (start and end tokens included: the official code trains
# CLIP's token-embedding table while the name tokens keep their embeddings),
# raw (unnormalised) text features, the stage-1 student and CLIP's text
# transformer frozen, rank loss on the 925 seen labels; AdamW lr 1e-3 and
# weight decay 0.05 for a batch of 8 x 64, 4 epochs, no warm-up, cosine to
# 1e-8 per iteration, mixed precision (on a machine without a GPU,
# tools/train.py runs it in bfloat16 on the CPU).
#
# The CoOp-style variant that learns only the 4 context vectors before the
# name of 'a photo of a {}.': prompt_learner=dict(type=MKTPromptLearner,
# init_template='a photo of a {}.', learn='context', normalize=True).
#
# Starts from the stage-1 checkpoint: run mkt_vit_b16_20e_nuswide.py (or
# vit-b16_nuswide.py) first, which writes
# work_dirs/mkt_vit_b16_20e_nuswide/epoch_20.pth.
from mmengine.config import read_base

with read_base():
    from .mkt_vit_b16_20e_nuswide import *  # noqa: F401,F403

from mmengine.optim import AmpOptimWrapper
from torch.optim import AdamW

from mmovl.engine import ClosedFormCosineAnnealingLR
from mmovl.models.prompts import MKTPromptLearner

model.update(
    prompt_learner=dict(
        type=MKTPromptLearner,
        init_template='There is a {} in the scene',
        learn='all_but_name',
        normalize=False),
    freeze_student=True,
    distill_weight=0.0)
load_from = 'work_dirs/mkt_vit_b16_20e_nuswide/epoch_20.pth'

max_epochs = 4
# Only the prompt's token vectors train: no layer-wise decay.
optim_wrapper = dict(
    type=AmpOptimWrapper,
    loss_scale='dynamic',
    optimizer=dict(type=AdamW, lr=1e-3, weight_decay=0.05))
param_scheduler = [
    dict(type=ClosedFormCosineAnnealingLR, eta_min=1e-8, by_epoch=True,
         begin=0, end=max_epochs, convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=1)
# 64 images per process on 8 GPUs, as the official stage 2.
auto_scale_lr = dict(base_batch_size=512)
