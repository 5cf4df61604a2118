# Copyright (c) mmovl contributors. All rights reserved.
# MKT stage 2 on the toy world with the official code's prompt: every token
# of 'There is a {} in the scene' that is not the name is learned (start and
# end tokens included), and the text features are not normalised; otherwise
# as mkt_toy_vit_p8_prompt_5e_toy.py (same schedule, same start).
from mmengine.config import read_base

with read_base():
    from .mkt_toy_vit_p8_prompt_5e_toy import *  # noqa: F401,F403

model.prompt_learner.update(
    init_template='There is a {} in the scene',
    learn='all_but_name',
    normalize=False)
