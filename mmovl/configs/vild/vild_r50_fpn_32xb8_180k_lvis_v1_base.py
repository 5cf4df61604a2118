# Copyright (c) mmovl contributors. All rights reserved.
# ViLD (text + image distillation through one region embedding) on LVIS v1:
# trained on the 866 base (frequent + common) categories, evaluated on all
# 1203 (APr, on the 337 rare ones, is the headline). Mask R-CNN R-50 FPN,
# the authors' 180k-iteration schedule at batch 256 (32 GPUs x 8 images);
# the data base has the authors' large-scale jitter (1024 x 1024 crops,
# scale 0.1-2.0, flips) and loads the precomputed CLIP proposals.
from mmengine.config import read_base

with read_base():
    from .._base_.datasets.lvis_v1_ov import *  # noqa: F401,F403
    from .._base_.default_runtime_det import *  # noqa: F401,F403
    from .._base_.models.vild_r50_fpn import *  # noqa: F401,F403
    from .._base_.schedules.vild_sgd_180k import *  # noqa: F401,F403

from mmovl.engine import DetVocabularyHook

# Every input padded to 1024 x 1024, in training and testing, as the
# authors' (images are at most 1024 a side here: crops, or long side 1024).
model.data_preprocessor.update(pad_size_divisor=1024)
# LVIS's synonyms of each name, averaged with its own embedding (the
# authors' released classifier uses synonyms); the val file lists all 1203.
model.update(synonyms=data_root + 'annotations/lvis_v1_val.json')
train_dataloader.update(batch_size=8)
# Training vocabulary: the train set's (base) classes; evaluation: all
# classes, the rare ones marked novel (for the ensemble).
custom_hooks = [dict(type=DetVocabularyHook)]
default_hooks.update(checkpoint=checkpoint_hook)
log_processor.update(by_epoch=False)
