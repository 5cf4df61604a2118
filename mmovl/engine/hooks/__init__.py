# Copyright (c) mmovl contributors. All rights reserved.
from .det_vocabulary_hook import DetVocabularyHook
from .vocabulary_hook import VocabularyHook

__all__ = ['DetVocabularyHook', 'VocabularyHook']
