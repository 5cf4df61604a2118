# Copyright (c) mmovl contributors. All rights reserved.
from .det_vocabulary_hook import DetVocabularyHook
from .rng_state_hook import RNGStateHook
from .vocabulary_hook import VocabularyHook

__all__ = ['DetVocabularyHook', 'RNGStateHook', 'VocabularyHook']
