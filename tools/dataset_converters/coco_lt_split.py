# Copyright (c) mmovl contributors. All rights reserved.
"""Cut COCO-LT (Wu et al. 2020, distribution-balanced loss) out of COCO.

COCO-LT trains on 1,909 images of COCO train2017 (80 classes) and tests on
all 5,000 images of val2017. This tool writes a COCO instances file with the
images of an id list and their annotations, for
:class:`mmovl.datasets.CocoMultiLabelDataset`:

    # training set: the 1,909 listed images of train2017
    python tools/dataset_converters/coco_lt_split.py \\
        --instances data/coco/annotations/instances_train2017.json \\
        --img-ids data/coco/annotations/coco_lt_img_ids.txt \\
        --out data/coco/annotations/coco_lt_train.json

    # test set: every image of val2017 (no --img-ids); a plain copy of
    # instances_val2017.json would do as well, this also checks it
    python tools/dataset_converters/coco_lt_split.py \\
        --instances data/coco/annotations/instances_val2017.json \\
        --out data/coco/annotations/coco_lt_test.json

The id list is a text file, one COCO image id (an integer) a line; blank
lines and white space around an id are ignored, and the images are written
in list order. The list of the release (github wutong16/
DistributionBalancedLoss, ``appendix/coco/longtail2017/img_id.pkl``) is,
despite its extension, such a text file (its code reads it with
``mmcv.list_from_file``): check with ``head -3 img_id.pkl`` that it shows
numbers and pass it as it is. This tool never unpickles anything; it refuses
a binary pickle. If you have a real pickle of ids and trust it, turn it into
text yourself:

    python -c "import pickle, sys; print(*pickle.load(sys.stdin.buffer), \\
        sep='\\n')" < img_id.pkl > coco_lt_img_ids.txt

Output: the input's fields (``info``, ``licenses``...) as they are, every
category in the input's order, the listed images and all annotations of those
images in the input's order. It is written to a temporary file and renamed;
identical inputs give identical bytes. The tool prints each class's number of
images and the head (>= 100 images) / medium (20-99) / tail (< 20) groups
that :class:`mmovl.evaluation.ZSLMultiLabelMetric` reports on; these groups
are meaningful for the training file.
"""
import argparse
import json
import os.path as osp
import re
from typing import Sequence, Tuple

from mmovl.datasets.long_tail import long_tail_summary, read_id_list
from mmovl.utils.fileio import atomic_write_json


def parse_coco_id(token: str) -> int:
    """Read a COCO image id (a non-negative integer, leading zeros ok)."""
    if not re.fullmatch(r'[0-9]+', token):
        raise ValueError(f'{token!r} is not a COCO image id (an integer)')
    return int(token)


def load_instances(path: str) -> dict:
    """Load and check a COCO instances file."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'instances file not found: {path}')
    with open(path, encoding='utf-8') as f:
        try:
            coco = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f'{path} is not valid JSON: {e}') from None
    if not isinstance(coco, dict):
        raise ValueError(f'{path} is not a COCO instances file (no object)')
    for key in ('images', 'annotations', 'categories'):
        if not isinstance(coco.get(key), list):
            raise ValueError(f'{path} is not a COCO instances file: no '
                             f'"{key}" list')
    image_ids = set()
    for img in coco['images']:
        if img['id'] in image_ids:
            raise ValueError(f'{path}: image id {img["id"]} appears twice')
        image_ids.add(img['id'])
    cat_ids = {c['id'] for c in coco['categories']}
    if len(cat_ids) != len(coco['categories']):
        raise ValueError(f'{path}: repeated category ids')
    for a in coco['annotations']:
        if a['category_id'] not in cat_ids:
            raise ValueError(f'{path}: annotation {a.get("id")} has '
                             f'category_id {a["category_id"]}, which is not '
                             'a category of the file')
    return coco


def select_images(coco: dict, entries: Sequence[Tuple[int, int]],
                  instances_path: str, list_path: str) -> dict:
    """Keep the listed images (in list order) and their annotations."""
    by_id = {img['id']: img for img in coco['images']}
    missing = [(lineno, i) for lineno, i in entries if i not in by_id]
    if missing:
        lineno, img_id = missing[0]
        more = (f' ({len(missing) - 1} more ids of the list are missing too)'
                if len(missing) > 1 else '')
        raise ValueError(f'{list_path}, line {lineno}: image id {img_id} is '
                         f'not in {instances_path}{more}')
    keep = {i for _, i in entries}
    out = {}
    for key, value in coco.items():
        if key == 'images':
            value = [by_id[i] for _, i in entries]
        elif key == 'annotations':
            value = [a for a in value if a['image_id'] in keep]
        out[key] = value
    return out


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        '--instances',
        required=True,
        help='COCO instances JSON, e.g. instances_train2017.json')
    parser.add_argument(
        '--img-ids',
        help='text file of COCO image ids, one a line (default: every '
        'image of --instances)')
    parser.add_argument('--out', required=True, help='output JSON')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    coco = load_instances(args.instances)
    if args.img_ids is not None:
        entries = read_id_list(args.img_ids, parse_coco_id)
        coco = select_images(coco, entries, args.instances, args.img_ids)
    atomic_write_json(args.out, coco, compact=True)
    print(f'{args.out}:\n{long_tail_summary(coco)}')


if __name__ == '__main__':
    main()
