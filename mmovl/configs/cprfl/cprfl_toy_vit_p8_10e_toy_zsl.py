# Copyright (c) mmovl contributors. All rights reserved.
# CPRFL as an open-vocabulary classifier: its prompts come from the label
# names' text embeddings, so the head scores any vocabulary. Trained on the
# balanced toy world's 24 seen labels (annotations/instances_train.json),
# tested as MKT is: ZSL on the 6 unseen labels, GZSL on all 30.
from mmengine.config import read_base

with read_base():
    from .cprfl_toy_vit_p8_10e_toy_lt import *  # noqa: F401,F403

train_dataloader.dataset.update(
    ann_file='annotations/instances_train.json',
    data_prefix='train',
    unseen_file=unseen_file,
    label_split='seen')
val_dataloader.dataset.update(
    unseen_file=unseen_file, label_split='all', frequency_ann_file=None)
test_dataloader = val_dataloader
