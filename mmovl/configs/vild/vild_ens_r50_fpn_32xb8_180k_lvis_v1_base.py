# Copyright (c) mmovl contributors. All rights reserved.
# ViLD-ensemble on LVIS v1: the image branch gets its own convs / fcs and
# projection (as the authors' code), and inference combines the branches by
# a geometric mean with lambda = 2/3 (text weighs more on base categories,
# image on novel ones).
from mmengine.config import read_base

with read_base():
    from .vild_r50_fpn_32xb8_180k_lvis_v1_base import *  # noqa: F401,F403

model.roi_head.bbox_head.update(
    image_branch='tower', score_mode='ensemble', ensemble_lambda=2 / 3)
