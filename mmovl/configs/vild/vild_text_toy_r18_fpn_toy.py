# Copyright (c) mmovl contributors. All rights reserved.
# ViLD-text on the toy world: the text branch only (no image distillation,
# no proposal store needed). It is also the class-agnostic proposal model
# whose RPN feeds tools/misc/precompute_vild_embeds.py before the full
# ViLD (vild_toy_r18_fpn_toy.py) trains; bench/bench_vild_toy.py runs both.
from mmengine.config import read_base

with read_base():
    from .vild_toy_r18_fpn_toy import *  # noqa: F401,F403

model['roi_head']['bbox_head'].update(image_branch=None, score_mode='text')
train_dataloader['dataset']['pipeline'] = train_pipeline_text_only
