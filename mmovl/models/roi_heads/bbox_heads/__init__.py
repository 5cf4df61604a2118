# Copyright (c) mmovl contributors. All rights reserved.
from .vild_bbox_head import ViLDBBoxHead

__all__ = ['ViLDBBoxHead']
