# Copyright (c) mmovl contributors. All rights reserved.
from .det_vocabulary_hook import DetVocabularyHook
from .finite_check_hook import FiniteCheckHook
from .rng_state_hook import RNGStateHook
from .vocabulary_hook import VocabularyHook

__all__ = [
    'DetVocabularyHook', 'FiniteCheckHook', 'RNGStateHook', 'VocabularyHook'
]
