# Copyright (c) mmovl contributors. All rights reserved.
from .asymmetric_loss import DetachedAsymmetricLoss
from .rank_loss import RankLoss
from .unicl_loss import UniCLLoss, gather_features
from .vild_image_loss import ViLDImageLoss

__all__ = [
    'DetachedAsymmetricLoss', 'RankLoss', 'UniCLLoss', 'gather_features',
    'ViLDImageLoss'
]
