# Copyright (c) mmovl contributors. All rights reserved.
from .bbox_heads import ViLDBBoxHead
from .vild_roi_head import ViLDRoIHead, map_boxes_to_input

__all__ = ['ViLDBBoxHead', 'ViLDRoIHead', 'map_boxes_to_input']
