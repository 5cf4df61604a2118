# Copyright (c) mmovl contributors. All rights reserved.
from .zsl_multi_label import ZSLMultiLabelMetric

__all__ = ['ZSLMultiLabelMetric']
