# Copyright (c) mmovl contributors. All rights reserved.
from .functional import (average_precision_per_class, mean_average_precision,
                         precision_recall_f1_at_k)
from .metrics import CompatLVISMetric, ZSLMultiLabelMetric, lvis_numpy_compat

__all__ = [
    'average_precision_per_class', 'mean_average_precision',
    'precision_recall_f1_at_k', 'ZSLMultiLabelMetric', 'CompatLVISMetric',
    'lvis_numpy_compat'
]
