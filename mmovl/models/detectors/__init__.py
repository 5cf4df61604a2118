# Copyright (c) mmovl contributors. All rights reserved.
from .vild import ViLD, vocabulary_mask

__all__ = ['ViLD', 'vocabulary_mask']
