# Copyright (c) mmovl contributors. All rights reserved.
from .prompt_learner import (MKTPromptLearner, TextTower, encode_text_embeds,
                             get_text_tower)

__all__ = [
    'MKTPromptLearner', 'TextTower', 'get_text_tower', 'encode_text_embeds'
]
