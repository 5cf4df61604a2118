# Copyright (c) mmovl contributors. All rights reserved.
# The supervised twin of cprfl/cprfl_toy_vit_p8_10e_toy_lt.py: the same
# pretrained toy CLIP tower (its CLS token), data, loss and schedule, with
# mmpretrain's linear multi-label head in place of CPRFL's prompts, so that
# the head is the only difference.
from mmengine.config import read_base

with read_base():
    from ..cprfl.cprfl_toy_vit_p8_10e_toy_lt import *  # noqa: F401,F403

from mmpretrain.models import ImageClassifier, MultiLabelLinearClsHead

backbone.update(out_type='cls_token')
model = dict(
    type=ImageClassifier,
    data_preprocessor=data_preprocessor,
    backbone=backbone,
    head=dict(
        type=MultiLabelLinearClsHead,
        num_classes=num_classes,
        in_channels=128,
        loss=model['head']['loss']))
custom_hooks = []  # a fixed classifier: no vocabulary to set
