# Copyright (c) mmovl contributors. All rights reserved.
"""The open-vocabulary COCO split: 48 base and 17 novel categories.

The split of Bansal et al. (ECCV 2018), used by OVR-CNN, ViLD and later
open-vocabulary detectors: train on the base categories of train2017 (novel
annotations removed), test on val2017 with all 65 categories; the other 15
COCO categories are dropped. The names are COCO's own (``tv``, ``couch``...)
and each tuple is in COCO category-id order. That matters: mmdet's
``CocoDataset`` (and ``CocoMetric``) give labels in the order the selected
categories are listed in the annotation file, whatever the order of
``metainfo['classes']``, and COCO's files list them by id.
"""
from typing import Dict, Sequence

COCO_OV_BASE_CLASSES = (
    'person', 'bicycle', 'car', 'motorcycle', 'train', 'truck', 'boat',
    'bench', 'bird', 'horse', 'sheep', 'bear', 'zebra', 'giraffe',
    'backpack', 'handbag', 'suitcase', 'frisbee', 'skis', 'kite',
    'surfboard', 'bottle', 'fork', 'spoon', 'bowl', 'banana', 'apple',
    'sandwich', 'orange', 'broccoli', 'carrot', 'pizza', 'donut', 'chair',
    'bed', 'toilet', 'tv', 'laptop', 'mouse', 'remote', 'microwave', 'oven',
    'toaster', 'refrigerator', 'book', 'clock', 'vase', 'toothbrush')

COCO_OV_NOVEL_CLASSES = (
    'airplane', 'bus', 'cat', 'dog', 'cow', 'elephant', 'umbrella', 'tie',
    'snowboard', 'skateboard', 'cup', 'knife', 'cake', 'couch', 'keyboard',
    'sink', 'scissors')


def _coco_order() -> Dict[str, int]:
    from mmdet.datasets import CocoDataset
    return {name: i for i, name in enumerate(CocoDataset.METAINFO['classes'])}


#: Base and novel together, in COCO category-id order (the test vocabulary).
COCO_OV_CLASSES = tuple(
    sorted(COCO_OV_BASE_CLASSES + COCO_OV_NOVEL_CLASSES,
           key=_coco_order().__getitem__))


def select_categories(coco: dict, names: Sequence[str],
                      source: str = 'the annotation file') -> dict:
    """Keep the named categories, their annotations and the images that
    still have one.

    Category, image and annotation entries keep their fields and order;
    other top-level fields (``info``, ``licenses``) are copied.

    Args:
        coco (dict): A COCO instances file, loaded.
        names (Sequence[str]): Category names to keep; each must exist.
        source (str): What ``coco`` is, for error messages. Defaults to
            ``'the annotation file'``.

    Returns:
        dict: The filtered file (the input is not modified).

    Examples:
        >>> coco = dict(
        ...     images=[dict(id=1), dict(id=2)],
        ...     annotations=[dict(id=1, image_id=1, category_id=1),
        ...                  dict(id=2, image_id=2, category_id=2)],
        ...     categories=[dict(id=1, name='cat'), dict(id=2, name='dog')])
        >>> out = select_categories(coco, ['dog'])
        >>> [im['id'] for im in out['images']]
        [2]
    """
    by_name = {c['name']: c['id'] for c in coco['categories']}
    missing = [n for n in names if n not in by_name]
    if missing:
        raise ValueError(f'{source} has no categories named {missing}.')
    keep_cats = {by_name[n] for n in names}
    annotations = [
        a for a in coco['annotations'] if a['category_id'] in keep_cats
    ]
    keep_imgs = {a['image_id'] for a in annotations}
    out = {
        k: v
        for k, v in coco.items()
        if k not in ('images', 'annotations', 'categories')
    }
    out['images'] = [im for im in coco['images'] if im['id'] in keep_imgs]
    out['annotations'] = annotations
    out['categories'] = [
        c for c in coco['categories'] if c['id'] in keep_cats
    ]
    return out
