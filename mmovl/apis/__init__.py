# Copyright (c) mmovl contributors. All rights reserved.
from .teacher_embeds import (encode_dataset_images, load_teacher_embeds,
                             save_teacher_embeds)

__all__ = [
    'encode_dataset_images', 'load_teacher_embeds', 'save_teacher_embeds'
]
