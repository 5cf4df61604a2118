# Copyright (c) mmovl contributors. All rights reserved.
from .vild_rpn_head import ViLDRPNHead

__all__ = ['ViLDRPNHead']
