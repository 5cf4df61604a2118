# Copyright (c) mmovl contributors. All rights reserved.
from .vocabulary_hook import VocabularyHook

__all__ = ['VocabularyHook']
