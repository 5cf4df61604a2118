# Copyright (c) mmovl contributors. All rights reserved.
# The supervised twin of cprfl_r18_10e_toy_lt.py: the same ResNet-18, data
# and schedule, with mmpretrain's linear sigmoid head in place of CPRFL's
# prompts (trained with the same asymmetric loss, so that the head is the
# only difference).
from mmengine.config import read_base

with read_base():
    from .cprfl_r18_10e_toy_lt import *  # noqa: F401,F403

from mmpretrain.models import (GlobalAveragePooling, ImageClassifier,
                               MultiLabelLinearClsHead)

model = dict(
    type=ImageClassifier,
    data_preprocessor=data_preprocessor,
    backbone=model['backbone'],
    neck=dict(type=GlobalAveragePooling),
    head=dict(
        type=MultiLabelLinearClsHead,
        num_classes=num_classes,
        in_channels=feat_channels,
        loss=model['head']['loss']))
custom_hooks = []  # a fixed classifier: no vocabulary to set
