# Copyright (c) mmovl contributors. All rights reserved.
from .inferencers import (OpenVocabClsInferencer, OpenVocabDetInferencer,
                          load_model_weights, read_vocabulary)
from .teacher_embeds import (encode_dataset_images, load_teacher_embeds,
                             save_teacher_embeds)
from .vild_embeds import (build_proposal_dataset, build_proposal_model,
                          precompute_vild_embeds)

__all__ = [
    'OpenVocabClsInferencer', 'OpenVocabDetInferencer', 'load_model_weights',
    'read_vocabulary',
    'encode_dataset_images', 'load_teacher_embeds', 'save_teacher_embeds',
    'build_proposal_dataset', 'build_proposal_model', 'precompute_vild_embeds'
]
