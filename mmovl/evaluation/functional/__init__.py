# Copyright (c) mmovl contributors. All rights reserved.
from .multi_label import (average_precision_per_class, mean_average_precision,
                          precision_recall_f1_at_k)

__all__ = [
    'average_precision_per_class', 'mean_average_precision',
    'precision_recall_f1_at_k'
]
