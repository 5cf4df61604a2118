# Copyright (c) mmovl contributors. All rights reserved.
from .cprfl_head import CPRFLHead
from .cprfl_vsi import CPRFLVSIBlock
from .two_stream_head import TwoStreamHead

__all__ = ['CPRFLHead', 'CPRFLVSIBlock', 'TwoStreamHead']
