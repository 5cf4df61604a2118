# Copyright (c) mmovl contributors. All rights reserved.
# MKT stage 1 on Open Images v4 in MKT's split: 7,186 seen labels for
# training, tested on the 400 unseen (ZSL) and all 7,586 (GZSL). Same model
# and schedule as NUS-WIDE; unverified labels are unknown (gt_score -1) and
# left out of AP and of the rank loss.
# Prepare: python tools/dataset_converters/open_images_mkt_split.py ...
#          (see that file) -> data/openimages/annotations/
from mmengine.config import read_base

with read_base():
    from .mkt_vit_b16_20e_nuswide import *  # noqa: F401,F403

from mmovl.datasets import OpenImagesMultiLabelDataset

data_root = 'data/openimages'
for _loader, _split, _labels in ((train_dataloader, 'train', 'seen'),
                                 (test_dataloader, 'test', 'all')):
    _loader.dataset = dict(
        type=OpenImagesMultiLabelDataset,
        data_root=data_root,
        data_prefix=_split,
        ann_file=f'annotations/open_images_mkt_{_split}.npz',
        label_split=_labels,
        missing='skip',
        pipeline=_loader.dataset.pipeline)
val_dataloader = test_dataloader
model.teacher.cache_dir = 'data/openimages/label_embeds'
# ~9M training images: validate once, at the end.
train_cfg.update(val_interval=max_epochs)
