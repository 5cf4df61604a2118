# Copyright (c) mmovl contributors. All rights reserved.
from .closed_form import ClosedFormCosineAnnealingLR, LinearWarmupLR
from .one_cycle import CheckpointableOneCycleLR

__all__ = [
    'LinearWarmupLR', 'ClosedFormCosineAnnealingLR', 'CheckpointableOneCycleLR'
]
