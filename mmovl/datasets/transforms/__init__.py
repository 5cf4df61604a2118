# Copyright (c) mmovl contributors. All rights reserved.
from .teacher_embeds import LoadTeacherEmbedding
from .unicl import CropBox, PromptText
from .vild import LoadCLIPProposalEmbeds, PackViLDInputs

__all__ = [
    'CropBox', 'PromptText', 'LoadTeacherEmbedding', 'LoadCLIPProposalEmbeds',
    'PackViLDInputs'
]
