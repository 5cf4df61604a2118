# Copyright (c) mmovl contributors. All rights reserved.
from .inferencers import (OpenVocabClsInferencer, OpenVocabDetInferencer,
                          load_model_weights, read_vocabulary)

__all__ = [
    'OpenVocabClsInferencer', 'OpenVocabDetInferencer', 'load_model_weights',
    'read_vocabulary'
]
