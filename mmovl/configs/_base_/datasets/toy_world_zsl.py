# Copyright (c) mmovl contributors. All rights reserved.
# The toy world for open-vocabulary multi-label classification: training
# sees the 24 seen labels only; the test set is scored on all 30 labels, and
# the evaluator reports ZSL (the 6 unseen labels alone as the vocabulary,
# over all test images, as MKT's code) and GZSL (all 30).
from mmengine.config import read_base

with read_base():
    from ..clip_preprocessor import *  # noqa: F401,F403
    from .toy_world_multilabel import *  # noqa: F401,F403

from mmovl.evaluation import ZSLMultiLabelMetric

# The teacher every toy config distils from: written by
# `python bench/bench_unicl_toy.py --export-teacher` (or `make demo`).
toy_teacher = 'data/toy_world/toy_clip.safetensors'
# CLIP's own image statistics: student and teacher see the same inputs.
data_preprocessor = dict(**clip_data_preprocessor)

val_dataloader.dataset.update(label_split='all')
test_dataloader = val_dataloader
val_evaluator = dict(
    type=ZSLMultiLabelMetric, k=(3, 5), zsl_protocol='unseen_vocabulary')
test_evaluator = val_evaluator
