# Copyright (c) mmovl contributors. All rights reserved.
from .lvis_metric import CompatLVISMetric, lvis_numpy_compat
from .zsl_multi_label import ZSLMultiLabelMetric

__all__ = ['CompatLVISMetric', 'ZSLMultiLabelMetric', 'lvis_numpy_compat']
