# Copyright (c) mmovl contributors. All rights reserved.
# MKT stage 1 on the toy world with the optimisation of the ViT-B/16 config
# (the authors' code): layer-wise lr decay 0.65, no weight decay on 1-D
# parameters, 2 warm-up epochs from lr 0, closed-form cosine, 20 epochs,
# validation every epoch. bench/README.md has its figures (the toy
# schedule's 10 epochs give the same ZSL mAP).
from mmengine.config import read_base

with read_base():
    from .mkt_toy_vit_p8_10e_toy import *  # noqa: F401,F403
    from .._base_.schedules.mkt_adamw_lrd_20e import *  # noqa: F401,F403
