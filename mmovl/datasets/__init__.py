# Copyright (c) mmovl contributors. All rights reserved.
from . import transforms  # noqa: F401
from .coco_multi_label import CocoMultiLabelDataset, read_label_file
from .coco_ov import (COCO_OV_BASE_CLASSES, COCO_OV_CLASSES,
                      COCO_OV_NOVEL_CLASSES)
from .coco_object_crops import CocoObjectCrops
from .lvis_ov import LVISV1OVDataset
from .nus_wide import NUSWideDataset
from .open_images import OpenImagesMultiLabelDataset
from .toy_world import (LABELS, SEEN_LABELS, UNSEEN_LABELS, ToyWorldConfig,
                        generate_toy_world)
from .unicl_dataset import CocoCaptionPairs, CsvCaptionPairs, UniCLDataset

__all__ = [
    'CocoMultiLabelDataset', 'read_label_file', 'CocoObjectCrops',
    'NUSWideDataset', 'OpenImagesMultiLabelDataset',
    'UniCLDataset', 'CocoCaptionPairs', 'CsvCaptionPairs', 'LABELS',
    'SEEN_LABELS', 'UNSEEN_LABELS', 'ToyWorldConfig', 'generate_toy_world',
    'LVISV1OVDataset', 'COCO_OV_BASE_CLASSES', 'COCO_OV_NOVEL_CLASSES',
    'COCO_OV_CLASSES'
]
