# Copyright (c) mmovl contributors. All rights reserved.
# One inferencer per task, each subclassing its host framework's: the
# classification one here (mmpretrain's), a detection one for ViLD
# (mmdet's DetInferencer) to come beside it as ov_det_inferencer.py, sharing
# load_model_weights.
from .ov_cls_inferencer import (OpenVocabClsInferencer, list_images,
                                load_model_weights, read_vocabulary)

__all__ = [
    'OpenVocabClsInferencer', 'list_images', 'load_model_weights',
    'read_vocabulary'
]
