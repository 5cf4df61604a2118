# Copyright (c) mmovl contributors. All rights reserved.
# MKT stage 2 on NUS-WIDE: prompt tuning over the frozen stage-1 student and
# CLIP text tower, trained with the rank loss on the 925 seen labels, as the
# official code's second stage schedules it: AdamW lr 1e-3, weight decay 0.05,
# batch 64, 4 epochs, no warm-up, cosine to 1e-8. (The official prompt is
# 'There is a {} in the scene' with every non-name token embedding trained;
# mmovl learns the context before the name of the stage-1 template.)
#
# Starts from the stage-1 checkpoint: run mkt_vit_b16_20e_nuswide.py (or
# vit-b16_nuswide.py) first, which writes
# work_dirs/mkt_vit_b16_20e_nuswide/epoch_20.pth.
from mmengine.config import read_base

with read_base():
    from .mkt_vit_b16_20e_nuswide import *  # noqa: F401,F403

from mmengine.optim import CosineAnnealingLR, OptimWrapper
from torch.optim import AdamW

from mmovl.models.prompts import MKTPromptLearner

model.update(
    prompt_learner=dict(
        type=MKTPromptLearner, init_template='a photo of a {}.'),
    freeze_student=True,
    distill_weight=0.0)
load_from = 'work_dirs/mkt_vit_b16_20e_nuswide/epoch_20.pth'

max_epochs = 4
# Only the context trains: no layer-wise decay (the student is frozen).
optim_wrapper = dict(
    type=OptimWrapper, optimizer=dict(type=AdamW, lr=1e-3, weight_decay=0.05))
param_scheduler = [
    dict(type=CosineAnnealingLR, eta_min=1e-8, by_epoch=True, begin=0,
         end=max_epochs, convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=1)
