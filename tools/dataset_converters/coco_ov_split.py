# Copyright (c) mmovl contributors. All rights reserved.
"""Write the open-vocabulary COCO files: 48 base / 17 novel categories.

    python tools/dataset_converters/coco_ov_split.py data/coco

reads ``annotations/instances_{train,val}2017.json`` under the root and
writes, beside them,

- ``instances_train2017_seen_2.json``: the 48 base categories, their
  annotations, and the images that have one;
- ``instances_val2017_all_2.json``: the 65 base + novel categories, their
  annotations, and the images that have one.

The names are those of mmdet's ``coco2ovd.py`` (shipped in its ``.mim``
tools), so files from either tool work with
``configs/_base_/datasets/coco_ov_48_17.py``; this one also writes
atomically and reports counts. The class lists are
:data:`mmovl.datasets.coco_ov.COCO_OV_BASE_CLASSES` / ``..._NOVEL_CLASSES``.
"""
import argparse
import json
import os.path as osp

from mmengine.logging import MMLogger

from mmovl.datasets.coco_ov import (COCO_OV_BASE_CLASSES, COCO_OV_CLASSES,
                                    select_categories)
from mmovl.utils.fileio import atomic_write_json

SPLITS = (
    ('instances_train2017.json', 'instances_train2017_seen_2.json',
     COCO_OV_BASE_CLASSES),
    ('instances_val2017.json', 'instances_val2017_all_2.json',
     COCO_OV_CLASSES),
)


def convert(src: str, dst: str, names) -> dict:
    """Filter one COCO instances file to ``names`` and write it."""
    if not osp.isfile(src):
        raise FileNotFoundError(f'COCO instances file not found: {src}')
    with open(src, encoding='utf-8') as f:
        try:
            coco = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f'{src} is not valid JSON: {e}') from None
    for key in ('images', 'annotations', 'categories'):
        if not isinstance(coco.get(key), list):
            raise ValueError(f'{src} is not a COCO instances file: no '
                             f'"{key}" list.')
    out = select_categories(coco, names, source=src)
    atomic_write_json(dst, out, compact=True)
    return dict(images=len(out['images']),
                annotations=len(out['annotations']),
                categories=len(out['categories']))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('data_root', help='COCO root (with annotations/)')
    p.add_argument('--ann-dir', default='annotations',
                   help='annotation folder under the root')
    args = p.parse_args(argv)
    logger = MMLogger.get_instance('mmovl')
    ann_dir = osp.join(args.data_root, args.ann_dir)
    for src, dst, names in SPLITS:
        counts = convert(osp.join(ann_dir, src), osp.join(ann_dir, dst),
                         names)
        logger.info(f'{osp.join(ann_dir, dst)}: {counts["categories"]} '
                    f'categories, {counts["images"]} images, '
                    f'{counts["annotations"]} annotations.')


if __name__ == '__main__':
    main()
