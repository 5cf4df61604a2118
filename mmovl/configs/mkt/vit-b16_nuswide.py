# Copyright (c) mmovl contributors. All rights reserved.
# The promised entry point:
# `python tools/train.py configs/mkt/vit-b16_nuswide.py` is MKT stage 1 on
# NUS-WIDE. The settings live in the importable sibling
# (a file name with dashes cannot be inherited through `read_base()`).
from mmengine.config import read_base

with read_base():
    from .mkt_vit_b16_20e_nuswide import *  # noqa: F401,F403
