# Copyright (c) mmovl contributors. All rights reserved.
# ViLD on COCO's open-vocabulary split: trained on the 48 base categories,
# evaluated on the 48 base + 17 novel (box AP50 on novel is the headline).
# Box-only (the benchmark scores boxes); otherwise the LVIS model and
# schedule.
from mmengine.config import read_base

with read_base():
    from .._base_.datasets.coco_ov_48_17 import *  # noqa: F401,F403
    from .._base_.default_runtime_det import *  # noqa: F401,F403
    from .._base_.models.vild_r50_fpn import *  # noqa: F401,F403
    from .._base_.schedules.vild_sgd_180k import *  # noqa: F401,F403

from mmovl.engine import DetVocabularyHook

model.roi_head.update(mask_roi_extractor=None, mask_head=None)
model.roi_head.bbox_head.update(num_classes=48)
model.test_cfg.rcnn.update(score_thr=0.05, max_per_img=100)
model.test_cfg.rcnn.pop('mask_thr_binary')

train_dataloader.update(batch_size=8)
custom_hooks = [dict(type=DetVocabularyHook)]
default_hooks.update(checkpoint=checkpoint_hook)
log_processor.update(by_epoch=False)
