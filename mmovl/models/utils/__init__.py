# Copyright (c) mmovl contributors. All rights reserved.
from .open_clip_utils import (OPEN_CLIP_CONFIG_DIR, load_open_clip_state_dict,
                              open_clip_vit_tokens,
                              quiet_open_clip_random_init,
                              read_open_clip_state_dict,
                              register_open_clip_config)

__all__ = [
    'OPEN_CLIP_CONFIG_DIR', 'register_open_clip_config',
    'read_open_clip_state_dict', 'load_open_clip_state_dict',
    'quiet_open_clip_random_init', 'open_clip_vit_tokens'
]
