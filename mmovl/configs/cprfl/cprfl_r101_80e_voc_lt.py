# Copyright (c) mmovl contributors. All rights reserved.
# CPRFL on VOC-LT: cprfl_r101_80e_coco_lt.py with VOC's 20 classes.
#
# Expected files (COCO-format instances JSON, data root data/voc):
# - annotations/voc_lt_train.json: the 1,142 VOC-LT training images (from
#   VOC2012 trainval, the distribution-balanced-loss release's list), images
#   under VOC2012/JPEGImages/; its per-class counts give head / medium /
#   tail. Made by tools/dataset_converters/voc_lt_split.py --voc-root
#   data/voc/VOC2012 --img-ids <list> (file names are JPEGImages/<id>.jpg,
#   so data_prefix is the year folder).
# - annotations/voc07_test.json: the 4,952 VOC2007 test images, under
#   VOC2007/JPEGImages/ (voc_lt_split.py --voc-root data/voc/VOC2007
#   --image-set test).
# The converter writes readable category names ('dining table', 'potted
# plant', 'tv monitor'); as in the authors' code the prompts spell them as
# VOC does ('diningtable', 'pottedplant', 'tvmonitor'): set
# model.prompt_names = None for the readable names.
from mmengine.config import read_base

with read_base():
    from .cprfl_r101_80e_coco_lt import *  # noqa: F401,F403

data_root = 'data/voc'
num_classes = 20
train_ann_file = 'annotations/voc_lt_train.json'

data_preprocessor.update(num_classes=num_classes)
voc_spellings = {
    'dining table': 'diningtable',
    'potted plant': 'pottedplant',
    'tv monitor': 'tvmonitor'
}
model.update(data_preprocessor=data_preprocessor, prompt_names=voc_spellings)
train_dataloader.dataset.update(
    data_root=data_root,
    ann_file=train_ann_file,
    data_prefix='VOC2012')
val_dataloader.dataset.update(
    data_root=data_root,
    ann_file='annotations/voc07_test.json',
    data_prefix='VOC2007',
    frequency_ann_file=train_ann_file)
test_dataloader = val_dataloader
