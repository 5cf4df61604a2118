# Copyright (c) mmovl contributors. All rights reserved.
from .closed_form import ClosedFormCosineAnnealingLR, LinearWarmupLR

__all__ = ['LinearWarmupLR', 'ClosedFormCosineAnnealingLR']
