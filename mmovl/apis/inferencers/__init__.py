# Copyright (c) mmovl contributors. All rights reserved.
# One inferencer per task, each subclassing its host framework's: the
# classification one (mmpretrain's) and the detection one for ViLD (mmdet's
# DetInferencer), sharing load_model_weights, read_vocabulary and
# read_image.
from .ov_cls_inferencer import (OpenVocabClsInferencer, list_images,
                                load_model_weights, read_image,
                                read_vocabulary)
from .ov_det_inferencer import OpenVocabDetInferencer

__all__ = [
    'OpenVocabClsInferencer', 'OpenVocabDetInferencer', 'list_images',
    'load_model_weights', 'read_image', 'read_vocabulary'
]
