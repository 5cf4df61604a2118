# Copyright (c) mmovl contributors. All rights reserved.
from .teacher_embeds import LoadTeacherEmbedding
from .unicl import CropBox, PromptText

__all__ = ['CropBox', 'PromptText', 'LoadTeacherEmbedding']
