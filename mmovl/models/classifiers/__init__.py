# Copyright (c) mmovl contributors. All rights reserved.
from .cprfl import CPRFL
from .mkt import MKT
from .unicl import UniCL

__all__ = ['CPRFL', 'MKT', 'UniCL']
