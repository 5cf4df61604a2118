# Copyright (c) mmovl contributors. All rights reserved.
from .multi_label import (Positives, average_precision_kernel,
                          average_precision_per_class, check_k, check_scores,
                          find_positives, mean_average_precision,
                          precision_recall_f1_at_k, precision_recall_f1_kernel,
                          quiet_nanmean, to_numpy)

__all__ = [
    'average_precision_per_class', 'mean_average_precision',
    'precision_recall_f1_at_k', 'average_precision_kernel',
    'precision_recall_f1_kernel', 'check_scores', 'check_k', 'find_positives',
    'Positives', 'quiet_nanmean', 'to_numpy'
]
