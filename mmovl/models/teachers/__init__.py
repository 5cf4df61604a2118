# Copyright (c) mmovl contributors. All rights reserved.
from .clip_teacher import CLIPTeacher, register_open_clip_config
from .templates import DEFAULT_TEMPLATES, ENSEMBLE_TEMPLATES, resolve_templates

__all__ = [
    'CLIPTeacher', 'register_open_clip_config', 'DEFAULT_TEMPLATES',
    'ENSEMBLE_TEMPLATES', 'resolve_templates'
]
