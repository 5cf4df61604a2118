# Copyright (c) mmovl contributors. All rights reserved.
"""Miniature COCO 2017, PASCAL VOC and LVIS v1 in their official formats.

Each ``make_*`` function writes a handful of synthetic images (one filled
rectangle per box, see :mod:`mmovl.testing.images`) and the annotation files
of the official release, laid out as the real configs expect under their
``data_root``, then runs the project's own converters where a config reads a
converted file:

- :func:`make_coco` (``data/coco``): ``train2017/``, ``val2017/``,
  ``annotations/instances_{train,val}2017.json`` with the 80 categories and
  their real ids (1-90 with COCO's gaps); COCO-LT's
  ``coco_lt_{train,test}.json`` through ``coco_lt_split.py`` and the
  open-vocabulary ``instances_train2017_seen_2.json`` /
  ``instances_val2017_all_2.json`` through ``coco_ov_split.py``.
- :func:`make_voc` (``data/voc``): the devkit's ``VOC2012`` (trainval) and
  ``VOC2007`` (test) folders with XML annotations and ``ImageSets/Main``
  lists; ``annotations/voc_lt_train.json`` and ``voc07_test.json`` through
  ``voc_lt_split.py``.
- :func:`make_lvis` (``data/lvis_v1``): ``annotations/lvis_v1_{train,val}
  .json`` over a 12-category vocabulary of real LVIS categories (four of
  each frequency), images under ``train2017/`` and ``val2017/`` as their
  ``coco_url`` says.

What each image holds is decided by the matching ``plan_*`` function, which
writes nothing: tests compare what a data set loads with the plan, not with
the converters' output. Everything is deterministic for a seed.

Class frequencies are uneven (a power law), but with a few dozen images
every class of COCO-LT / VOC-LT has fewer than 20 training images: all are
'tail' under the benchmarks' thresholds (head >= 100, tail < 20), and the
head / medium groups of ``ZSLMultiLabelMetric`` are empty (NaN).
"""
import contextlib
import importlib.util
import io
import os.path as osp
import xml.etree.ElementTree as ET
import zlib
from collections import Counter
from typing import Dict, List, Sequence, Tuple

import numpy as np

from mmovl.testing.images import random_boxes, synth_image, write_jpeg
from mmovl.utils import atomic_write_json, atomic_write_text

__all__ = [
    'COCO_CATEGORIES', 'VOC_CLASSES', 'LVIS_CATEGORIES', 'class_colour',
    'plan_coco', 'plan_voc', 'plan_lvis', 'make_coco', 'make_voc', 'make_lvis'
]

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONVERTERS = osp.join(REPO_ROOT, 'tools', 'dataset_converters')

# -- vocabularies -------------------------------------------------------------
# COCO 2017's 80 categories by supercategory: (id, name). The ids run from 1
# to 90; 12, 26, 29, 30, 45, 66, 68, 69, 71 and 83 are unused, as in the
# official files.
_COCO_BY_SUPERCATEGORY = (
    ('person', ((1, 'person'), )),
    ('vehicle', ((2, 'bicycle'), (3, 'car'), (4, 'motorcycle'),
                 (5, 'airplane'), (6, 'bus'), (7, 'train'), (8, 'truck'),
                 (9, 'boat'))),
    ('outdoor', ((10, 'traffic light'), (11, 'fire hydrant'),
                 (13, 'stop sign'), (14, 'parking meter'), (15, 'bench'))),
    ('animal', ((16, 'bird'), (17, 'cat'), (18, 'dog'), (19, 'horse'),
                (20, 'sheep'), (21, 'cow'), (22, 'elephant'), (23, 'bear'),
                (24, 'zebra'), (25, 'giraffe'))),
    ('accessory', ((27, 'backpack'), (28, 'umbrella'), (31, 'handbag'),
                   (32, 'tie'), (33, 'suitcase'))),
    ('sports', ((34, 'frisbee'), (35, 'skis'), (36, 'snowboard'),
                (37, 'sports ball'), (38, 'kite'), (39, 'baseball bat'),
                (40, 'baseball glove'), (41, 'skateboard'), (42, 'surfboard'),
                (43, 'tennis racket'))),
    ('kitchen', ((44, 'bottle'), (46, 'wine glass'), (47, 'cup'),
                 (48, 'fork'), (49, 'knife'), (50, 'spoon'), (51, 'bowl'))),
    ('food', ((52, 'banana'), (53, 'apple'), (54, 'sandwich'),
              (55, 'orange'), (56, 'broccoli'), (57, 'carrot'),
              (58, 'hot dog'), (59, 'pizza'), (60, 'donut'), (61, 'cake'))),
    ('furniture', ((62, 'chair'), (63, 'couch'), (64, 'potted plant'),
                   (65, 'bed'), (67, 'dining table'), (70, 'toilet'))),
    ('electronic', ((72, 'tv'), (73, 'laptop'), (74, 'mouse'),
                    (75, 'remote'), (76, 'keyboard'), (77, 'cell phone'))),
    ('appliance', ((78, 'microwave'), (79, 'oven'), (80, 'toaster'),
                   (81, 'sink'), (82, 'refrigerator'))),
    ('indoor', ((84, 'book'), (85, 'clock'), (86, 'vase'), (87, 'scissors'),
                (88, 'teddy bear'), (89, 'hair drier'), (90, 'toothbrush'))),
)

#: COCO's categories as its instances files list them (by id).
COCO_CATEGORIES: Tuple[dict, ...] = tuple(
    sorted((dict(supercategory=sup, id=i, name=name)
            for sup, cats in _COCO_BY_SUPERCATEGORY for i, name in cats),
           key=lambda c: c['id']))

#: PASCAL VOC's class identifiers in the devkit's order.
VOC_CLASSES = ('aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car',
               'cat', 'chair', 'cow', 'diningtable', 'dog', 'horse',
               'motorbike', 'person', 'pottedplant', 'sheep', 'sofa',
               'train', 'tvmonitor')

#: Twelve real LVIS v1 categories (id, name, synset, synonyms, definition
#: and frequency as in ``lvis_v1_val.json``), four of each frequency: the
#: miniature's whole vocabulary. Image and instance counts are filled in
#: from the miniature's training set.
LVIS_CATEGORIES: Tuple[dict, ...] = tuple(
    dict(id=i, name=name, synset=synset, synonyms=list(synonyms),
         frequency=freq, **{'def': definition})
    for i, name, freq, synset, synonyms, definition in (
        (1, 'aerosol_can', 'c', 'aerosol.n.02', ('aerosol_can', 'spray_can'),
         'a dispenser that holds a substance under pressure'),
        (3, 'airplane', 'f', 'airplane.n.01', ('airplane', 'aeroplane'),
         'an aircraft that has a fixed wing and is powered by propellers or '
         'jets'),
        (6, 'alligator', 'c', 'alligator.n.02', ('alligator', 'gator'),
         'amphibious reptiles related to crocodiles but with shorter broader '
         'snouts'),
        (8, 'ambulance', 'c', 'ambulance.n.01', ('ambulance', ),
         'a vehicle that takes people to and from hospitals'),
        (12, 'apple', 'f', 'apple.n.01', ('apple', ),
         'fruit with red or yellow or green skin and sweet to tart crisp '
         'whitish flesh'),
        (13, 'applesauce', 'r', 'applesauce.n.01', ('applesauce', ),
         'puree of stewed apples usually sweetened and spiced'),
        (14, 'apricot', 'r', 'apricot.n.02', ('apricot', ),
         'downy yellow to rosy-colored fruit resembling a small peach'),
        (20, 'armoire', 'r', 'armoire.n.01', ('armoire', ),
         'a large wardrobe or cabinet'),
        (37, 'bagel', 'c', 'bagel.n.01', ('bagel', 'beigel'),
         'glazed yeast-raised doughnut-shaped roll with hard crust'),
        (45, 'banana', 'f', 'banana.n.02', ('banana', ),
         'elongated crescent-shaped yellow fruit with soft sweet flesh'),
        (51, 'barbell', 'r', 'barbell.n.01', ('barbell', ),
         'a bar to which heavy discs are attached at each end; used in '
         'weightlifting'),
        (76, 'bear', 'f', 'bear.n.01', ('bear', ),
         'large carnivorous or omnivorous mammals with shaggy coats and '
         'claws'),
    ))

# Common photo sizes (width, height) of each source.
COCO_SIZES = ((640, 480), (640, 427), (480, 640), (640, 426), (612, 612),
              (640, 360), (427, 640), (500, 375))
VOC_SIZES = ((500, 375), (375, 500), (500, 333), (333, 500), (500, 366),
             (486, 500), (500, 281))

_COCO_URL = 'http://images.cocodataset.org'
_SEED_TAGS = dict(coco=1, voc=2, lvis=3)


# -- helpers ------------------------------------------------------------------
def _rng(seed: int, *tags: int) -> np.random.Generator:
    return np.random.default_rng([seed, *tags])


def class_colour(name: str) -> Tuple[int, int, int]:
    """A fixed BGR colour for a class name (the same in every image)."""
    rng = np.random.default_rng(zlib.crc32(name.encode('utf-8')))
    return tuple(int(v) for v in rng.integers(0, 256, size=3))


def _zipf_weights(n: int, exponent: float = 1.1) -> np.ndarray:
    w = 1.0 / np.arange(1, n + 1)**exponent
    return w / w.sum()


def _draw_objects(rng: np.random.Generator, names: Sequence[str],
                  weights: np.ndarray, low: int, high: int) -> List[str]:
    """``low``-``high`` class names drawn with ``weights``."""
    num = int(rng.integers(low, high + 1))
    return [names[i] for i in rng.choice(len(names), size=num, p=weights)]


def _unique_ints(rng: np.random.Generator, num: int, low: int,
                 high: int) -> List[int]:
    """``num`` distinct integers in ``[low, high)``, in drawing order."""
    taken, out = set(), []
    while len(out) < num:
        v = int(rng.integers(low, high))
        if v not in taken:
            taken.add(v)
            out.append(v)
    return out


def _float_boxes(rng: np.random.Generator, width: int, height: int,
                 num: int, index: int) -> List[Tuple[float, ...]]:
    """``num`` boxes ``(x1, y1, x2, y2)`` for the ``index``-th image of a
    split. Every third image with two or more boxes ends with a small one
    (12-30 pixels a side, under COCO's 32 x 32 'small' area), so that the
    small-object APs of COCO and LVIS are defined too."""
    small = int(index % 3 == 1 and num >= 2)
    boxes = [
        tuple(float(v) for v in b)
        for b in random_boxes(rng, width, height, num - small, 0.1, 0.5)
    ]
    for _ in range(small):
        w, h = rng.uniform(12, 30, size=2)
        x1, y1 = rng.uniform(0, width - w), rng.uniform(0, height - h)
        boxes.append(
            tuple(round(float(v), 2) for v in (x1, y1, x1 + w, y1 + h)))
    return boxes


def _paint(path: str, seed: int, tag: int, index: int, width: int,
           height: int, boxes: Sequence[Sequence[float]],
           names: Sequence[str]) -> None:
    img = synth_image(
        _rng(seed, tag, 1, index), width, height, boxes,
        [class_colour(n) for n in names])
    write_jpeg(path, img)


def _run_converter(name: str, argv: Sequence[str]) -> str:
    """Run ``tools/dataset_converters/<name>.py``'s ``main(argv)`` in this
    process; returns what it printed."""
    path = osp.join(CONVERTERS, f'{name}.py')
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'{path} not found: the miniature data sets use the converters '
            'of an mmovl source checkout (pip install -e .)')
    spec = importlib.util.spec_from_file_location(
        f'_mmovl_converter_{name}', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        module.main(list(argv))
    # A progress bar redraws its line with carriage returns: keep the last.
    return '\n'.join(
        line.rsplit('\r', 1)[-1] for line in out.getvalue().split('\n'))


def _rect_polygon(x: float, y: float, w: float, h: float) -> List[float]:
    return [x, y, x + w, y, x + w, y + h, x, y + h]


def _xywh(box: Sequence[float]) -> List[float]:
    x1, y1, x2, y2 = box
    return [x1, y1, round(x2 - x1, 2), round(y2 - y1, 2)]


# -- COCO ---------------------------------------------------------------------
# Objects of the first images of each split, so that the open-vocabulary
# split always has what it must handle: base with novel classes in one image,
# novel only (dropped from the base training file), classes of neither group
# (dropped from both files) and an image without any box.
_COCO_FIXED = dict(
    train=(('person', 'airplane', 'car'), ('dog', 'cat'), ('traffic light', ),
           ('person', 'bicycle', 'umbrella', 'bench'), ()),
    val=(('person', 'bus', 'bottle'), ('cake', 'cup'), ('stop sign', ),
         ('person', 'dog', 'chair')),
)


def plan_coco(seed: int = 0, num_train: int = 16, num_val: int = 8) -> dict:
    """What :func:`make_coco` writes: images, their boxes and the COCO-LT
    image list, without writing anything.

    Class frequencies follow a power law ('person' the most frequent, the
    other classes in a random order), so the long-tailed training set has
    frequent and rare classes.

    Args:
        seed (int): Random seed. Defaults to 0.
        num_train (int): Images of train2017. Defaults to 16.
        num_val (int): Images of val2017. Defaults to 8.

    Returns:
        dict: ``train`` / ``val``: image records (``id``, ``file_name``,
        ``width``, ``height``, ``objects``: dicts of ``name`` and ``box``
        ``(x1, y1, x2, y2)``), in file order; ``lt_img_ids``: the COCO-LT
        training list, in list order.
    """
    if num_train < len(_COCO_FIXED['train']) + 2 or num_val < len(
            _COCO_FIXED['val']):
        raise ValueError(f'plan_coco needs at least '
                         f'{len(_COCO_FIXED["train"]) + 2} training and '
                         f'{len(_COCO_FIXED["val"])} validation images')
    rng = _rng(seed, _SEED_TAGS['coco'])
    others = [c['name'] for c in COCO_CATEGORIES if c['name'] != 'person']
    order = ['person'] + [others[i] for i in rng.permutation(len(others))]
    weights = _zipf_weights(len(order))
    ids = _unique_ints(rng, num_train + num_val, 1, 581930)
    plan = {}
    for split, id_slice in (('train', ids[:num_train]),
                            ('val', ids[num_train:])):
        images = []
        for k, img_id in enumerate(id_slice):
            fixed = _COCO_FIXED[split]
            names = (list(fixed[k]) if k < len(fixed) else _draw_objects(
                rng, order, weights, 1, 4))
            width, height = COCO_SIZES[int(rng.integers(len(COCO_SIZES)))]
            boxes = _float_boxes(rng, width, height, len(names), k)
            images.append(
                dict(id=img_id, file_name=f'{img_id:012d}.jpg', width=width,
                     height=height,
                     objects=[dict(name=n, box=b)
                              for n, b in zip(names, boxes)]))
        plan[split] = images
    # COCO-LT: a subset of the labelled training images, shuffled (the
    # converter keeps the list's order).
    labelled = [im['id'] for im in plan['train'] if im['objects']]
    keep = rng.permutation(len(labelled))[:max(1, len(labelled) - 2)]
    plan['lt_img_ids'] = [labelled[i] for i in keep]
    return plan


def _coco_instances(images: Sequence[dict], split: str,
                    first_ann_id: int) -> dict:
    cat_id = {c['name']: c['id'] for c in COCO_CATEGORIES}
    img_entries, anns = [], []
    for im in images:
        img_entries.append(
            dict(license=1, file_name=im['file_name'],
                 coco_url=f'{_COCO_URL}/{split}/{im["file_name"]}',
                 height=im['height'], width=im['width'],
                 date_captured='2013-11-14 17:02:52', flickr_url='',
                 id=im['id']))
        for obj in im['objects']:
            x, y, w, h = _xywh(obj['box'])
            anns.append(
                dict(segmentation=[_rect_polygon(x, y, w, h)],
                     area=round(w * h, 4), iscrowd=0, image_id=im['id'],
                     bbox=[x, y, w, h], category_id=cat_id[obj['name']],
                     id=first_ann_id + len(anns)))
    return dict(
        info=dict(description='COCO 2017 Dataset (mmovl miniature: '
                  'synthetic images)', url='http://cocodataset.org',
                  version='1.0', year=2017, contributor='mmovl',
                  date_created='2017/09/01'),
        licenses=[dict(url='', id=1, name='synthetic, no license needed')],
        images=img_entries,
        annotations=anns,
        categories=[dict(c) for c in COCO_CATEGORIES])


def make_coco(root: str, seed: int = 0, num_train: int = 16,
              num_val: int = 8) -> dict:
    """Write a miniature COCO 2017 under ``root`` (``data/coco``).

    Writes ``train2017/*.jpg``, ``val2017/*.jpg`` (12-digit file names),
    ``annotations/instances_{train,val}2017.json`` (the official fields, the
    80 categories with their ids and supercategories, boxes with a
    rectangle polygon each), the COCO-LT image list
    ``annotations/coco_lt_img_ids.txt`` and, through the project's
    converters, ``annotations/coco_lt_{train,test}.json``
    (``coco_lt_split.py``) and ``annotations/instances_train2017_seen_2
    .json`` / ``instances_val2017_all_2.json`` (``coco_ov_split.py``).

    Args:
        root (str): The data root.
        seed (int): Random seed. Defaults to 0.
        num_train (int): Images of train2017. Defaults to 16.
        num_val (int): Images of val2017. Defaults to 8.

    Returns:
        dict: Counts, the files written, the class names and the converters'
        printed summaries.
    """
    plan = plan_coco(seed, num_train, num_val)
    ann_dir = osp.join(root, 'annotations')
    tag = _SEED_TAGS['coco']
    files, index, next_ann = {}, 0, 1
    for split in ('train', 'val'):
        folder = f'{split}2017'
        for im in plan[split]:
            _paint(
                osp.join(root, folder, im['file_name']), seed, tag, index,
                im['width'], im['height'], [o['box'] for o in im['objects']],
                [o['name'] for o in im['objects']])
            index += 1
        coco = _coco_instances(plan[split], folder, next_ann)
        next_ann += len(coco['annotations'])
        files[f'instances_{split}'] = atomic_write_json(
            osp.join(ann_dir, f'instances_{folder}.json'), coco, compact=True)
    files['lt_img_ids'] = atomic_write_text(
        osp.join(ann_dir, 'coco_lt_img_ids.txt'),
        ''.join(f'{i}\n' for i in plan['lt_img_ids']))
    files['lt_train'] = osp.join(ann_dir, 'coco_lt_train.json')
    files['lt_test'] = osp.join(ann_dir, 'coco_lt_test.json')
    log = _run_converter('coco_lt_split', [
        '--instances', files['instances_train'], '--img-ids',
        files['lt_img_ids'], '--out', files['lt_train']
    ])
    log += _run_converter('coco_lt_split', [
        '--instances', files['instances_val'], '--out', files['lt_test']
    ])
    log += _run_converter('coco_ov_split', [root])
    files['ov_train'] = osp.join(ann_dir, 'instances_train2017_seen_2.json')
    files['ov_val'] = osp.join(ann_dir, 'instances_val2017_all_2.json')
    for key in ('lt_train', 'lt_test', 'ov_train', 'ov_val'):
        if not osp.isfile(files[key]):
            raise RuntimeError(f'the converter did not write {files[key]}')
    return dict(
        root=root,
        seed=seed,
        num_train=len(plan['train']),
        num_val=len(plan['val']),
        num_lt_train=len(plan['lt_img_ids']),
        num_annotations=next_ann - 1,
        classes=tuple(c['name'] for c in COCO_CATEGORIES),
        files=files,
        converter_output=log)


# -- PASCAL VOC ---------------------------------------------------------------
# (class, difficult) of the first images: the run-together names, an object
# marked difficult whose class is in no other object of the image (VOC-LT
# keeps it as a label) and one all-difficult image.
_VOC_FIXED = dict(
    trainval=((('pottedplant', 0), ('person', 0)),
              (('diningtable', 0), ('chair', 1)),
              (('tvmonitor', 0), ('sofa', 0), ('cat', 0)),
              (('bottle', 1), )),
    test=((('tvmonitor', 0), ('person', 0)), (('diningtable', 0), ),
          (('pottedplant', 0), ('dog', 1))),
)


def plan_voc(seed: int = 0, num_trainval: int = 16,
             num_test: int = 8) -> dict:
    """What :func:`make_voc` writes, without writing anything.

    Args:
        seed (int): Random seed. Defaults to 0.
        num_trainval (int): Images of VOC2012 trainval (half train, half
            val). Defaults to 16.
        num_test (int): Images of the VOC2007 test set. Defaults to 8.

    Returns:
        dict: ``trainval`` (VOC2012) / ``test`` (VOC2007): image records
        sorted by id as the devkit's lists are (``id`` such as
        ``2008_000123`` or ``000042``, ``set`` ``train`` / ``val`` /
        ``test``, ``width``, ``height``, ``objects``: dicts of ``name`` (VOC
        identifier), ``bndbox`` ``(xmin, ymin, xmax, ymax)`` in VOC's
        1-based inclusive pixels, ``difficult``, ``truncated``, ``pose``);
        ``lt_ids``: the VOC-LT training list (VOC2012 ids), in list order.
    """
    if num_trainval < len(_VOC_FIXED['trainval']) + 2 or num_test < len(
            _VOC_FIXED['test']):
        raise ValueError(f'plan_voc needs at least '
                         f'{len(_VOC_FIXED["trainval"]) + 2} trainval and '
                         f'{len(_VOC_FIXED["test"])} test images')
    rng = _rng(seed, _SEED_TAGS['voc'])
    others = [c for c in VOC_CLASSES if c != 'person']
    order = ['person'] + [others[i] for i in rng.permutation(len(others))]
    weights = _zipf_weights(len(order))
    years = rng.integers(2007, 2012, size=num_trainval)
    numbers = _unique_ints(rng, num_trainval, 1, 8000)
    trainval_ids = [f'{y}_{n:06d}' for y, n in zip(years, numbers)]
    test_ids = [f'{n:06d}' for n in _unique_ints(rng, num_test, 1, 9964)]
    plan = {}
    for split, ids in (('trainval', trainval_ids), ('test', test_ids)):
        images = []
        for k, voc_id in enumerate(ids):
            fixed = _VOC_FIXED[split]
            if k < len(fixed):
                names, difficult = zip(*fixed[k])
            else:
                names = _draw_objects(rng, order, weights, 1, 3)
                difficult = (rng.random(len(names)) < 0.15).astype(int)
            width, height = VOC_SIZES[int(rng.integers(len(VOC_SIZES)))]
            objects = []
            for name, diff, box in zip(
                    names, difficult,
                    _float_boxes(rng, width, height, len(names), k)):
                xmin, ymin = int(round(box[0])) + 1, int(round(box[1])) + 1
                xmax = min(int(round(box[2])), width)
                ymax = min(int(round(box[3])), height)
                objects.append(
                    dict(name=name, bndbox=(xmin, ymin, xmax, ymax),
                         difficult=int(diff),
                         truncated=int(rng.random() < 0.3),
                         pose=str(rng.choice(
                             ['Unspecified', 'Frontal', 'Left', 'Right']))))
            images.append(
                dict(id=voc_id, width=width, height=height, objects=objects))
        plan[split] = images
    half = num_trainval // 2
    for k, i in enumerate(rng.permutation(num_trainval)):
        plan['trainval'][i]['set'] = 'train' if k < half else 'val'
    for im in plan['test']:
        im['set'] = 'test'
    for split in ('trainval', 'test'):
        plan[split].sort(key=lambda im: im['id'])
    keep = rng.permutation(num_trainval)[:max(1, num_trainval - 3)]
    plan['lt_ids'] = [trainval_ids[i] for i in keep]
    return plan


def _voc_xml(im: dict, year: str) -> str:
    """One image's annotation, laid out as the devkit's files."""
    root = ET.Element('annotation')

    def sub(parent, tag, text=None):
        node = ET.SubElement(parent, tag)
        if text is not None:
            node.text = str(text)
        return node

    sub(root, 'folder', f'VOC{year}')
    sub(root, 'filename', f'{im["id"]}.jpg')
    source = sub(root, 'source')
    src_year = year if year == '2007' else im['id'][:4]
    sub(source, 'database', f'The VOC{src_year} Database')
    sub(source, 'annotation', f'PASCAL VOC{src_year}')
    sub(source, 'image', 'flickr')
    size = sub(root, 'size')
    sub(size, 'width', im['width'])
    sub(size, 'height', im['height'])
    sub(size, 'depth', 3)
    sub(root, 'segmented', 0)
    for obj in im['objects']:
        node = sub(root, 'object')
        sub(node, 'name', obj['name'])
        sub(node, 'pose', obj['pose'])
        sub(node, 'truncated', obj['truncated'])
        sub(node, 'difficult', obj['difficult'])
        box = sub(node, 'bndbox')
        for tag, value in zip(('xmin', 'ymin', 'xmax', 'ymax'),
                              obj['bndbox']):
            sub(box, tag, value)
    ET.indent(root, space='\t')
    return ET.tostring(root, encoding='unicode') + '\n'


def _write_voc_year(year_dir: str, year: str, images: Sequence[dict],
                    sets: Sequence[str], seed: int, first_index: int) -> None:
    for k, im in enumerate(images):
        atomic_write_text(
            osp.join(year_dir, 'Annotations', f'{im["id"]}.xml'),
            _voc_xml(im, year))
        _paint(
            osp.join(year_dir, 'JPEGImages', f'{im["id"]}.jpg'), seed,
            _SEED_TAGS['voc'], first_index + k, im['width'], im['height'],
            [(b[0] - 1, b[1] - 1, b[2], b[3])
             for b in (o['bndbox'] for o in im['objects'])],
            [o['name'] for o in im['objects']])
    main_dir = osp.join(year_dir, 'ImageSets', 'Main')
    for set_name in sets:
        members = [im for im in images if set_name in (im['set'], 'trainval')]
        atomic_write_text(
            osp.join(main_dir, f'{set_name}.txt'),
            ''.join(f'{im["id"]}\n' for im in members))
        # Per class: 1 present, 0 only difficult, -1 absent.
        for cls in VOC_CLASSES:
            lines = []
            for im in members:
                flags = [o['difficult'] for o in im['objects']
                         if o['name'] == cls]
                flag = -1 if not flags else (0 if all(flags) else 1)
                lines.append(f'{im["id"]} {flag:2d}\n')
            atomic_write_text(
                osp.join(main_dir, f'{cls}_{set_name}.txt'), ''.join(lines))


def make_voc(root: str, seed: int = 0, num_trainval: int = 16,
             num_test: int = 8) -> dict:
    """Write a miniature PASCAL VOC devkit under ``root`` (``data/voc``).

    Writes ``VOC2012/{Annotations,JPEGImages,ImageSets/Main}`` (trainval:
    ``train.txt``, ``val.txt``, ``trainval.txt`` and the per-class lists)
    and ``VOC2007/...`` (the test set: ``test.txt`` and per-class lists),
    the VOC-LT list ``annotations/voc_lt_img_ids.txt`` and, through
    ``voc_lt_split.py``, ``annotations/voc_lt_train.json`` (that list) and
    ``annotations/voc07_test.json`` (``--image-set test``). The converter
    writes readable category names ('potted plant'), what the CPRFL config
    embeds with CLIP, and keeps difficult objects as labels.

    Args:
        root (str): The data root.
        seed (int): Random seed. Defaults to 0.
        num_trainval (int): Images of VOC2012 trainval. Defaults to 16.
        num_test (int): Images of the VOC2007 test set. Defaults to 8.

    Returns:
        dict: Counts, the files written, the class identifiers and the
        converter's printed summaries.
    """
    plan = plan_voc(seed, num_trainval, num_test)
    voc12, voc07 = osp.join(root, 'VOC2012'), osp.join(root, 'VOC2007')
    _write_voc_year(voc12, '2012', plan['trainval'],
                    ('train', 'val', 'trainval'), seed, 0)
    _write_voc_year(voc07, '2007', plan['test'], ('test', ), seed,
                    len(plan['trainval']))
    ann_dir = osp.join(root, 'annotations')
    files = dict(
        lt_img_ids=atomic_write_text(
            osp.join(ann_dir, 'voc_lt_img_ids.txt'),
            ''.join(f'{i}\n' for i in plan['lt_ids'])),
        lt_train=osp.join(ann_dir, 'voc_lt_train.json'),
        test=osp.join(ann_dir, 'voc07_test.json'))
    log = _run_converter('voc_lt_split', [
        '--voc-root', voc12, '--img-ids', files['lt_img_ids'], '--out',
        files['lt_train']
    ])
    log += _run_converter(
        'voc_lt_split',
        ['--voc-root', voc07, '--image-set', 'test', '--out', files['test']])
    return dict(
        root=root,
        seed=seed,
        num_trainval=len(plan['trainval']),
        num_test=len(plan['test']),
        num_lt_train=len(plan['lt_ids']),
        classes=VOC_CLASSES,
        files=files,
        converter_output=log)


# -- LVIS v1 ------------------------------------------------------------------
_LVIS_FREQ_WEIGHT = dict(f=4.0, c=2.0, r=0.6)
# The first training images: rare classes only (dropped once the base split
# removes them), base with rare, base only.
_LVIS_FIXED_TRAIN = (('applesauce', 'barbell'), ('banana', 'apricot', 'bear'),
                     ('airplane', 'ambulance'))


def plan_lvis(seed: int = 0, num_train: int = 16, num_val: int = 10) -> dict:
    """What :func:`make_lvis` writes, without writing anything.

    The validation set holds every category of :data:`LVIS_CATEGORIES`
    (the first images carry three each, shuffled), so that ``LVISMetric``'s
    APr, APc and APf are all defined. Some validation images come from COCO's
    train2017, as in LVIS v1.

    Args:
        seed (int): Random seed. Defaults to 0.
        num_train (int): Training images. Defaults to 16.
        num_val (int): Validation images, at least 4. Defaults to 10.

    Returns:
        dict: ``train`` / ``val``: image records (``id``, ``folder``
        (``train2017`` / ``val2017``), ``width``, ``height``,
        ``neg_category_ids``, ``not_exhaustive_category_ids``,
        ``objects``: dicts of ``name`` and ``box`` ``(x1, y1, x2, y2)``).
    """
    num_fixed_val = -(-len(LVIS_CATEGORIES) // 3)
    if num_train < len(_LVIS_FIXED_TRAIN) + 1 or num_val < num_fixed_val:
        raise ValueError(f'plan_lvis needs at least '
                         f'{len(_LVIS_FIXED_TRAIN) + 1} training and '
                         f'{num_fixed_val} validation images')
    rng = _rng(seed, _SEED_TAGS['lvis'])
    names = [c['name'] for c in LVIS_CATEGORIES]
    cat_id = {c['name']: c['id'] for c in LVIS_CATEGORIES}
    weights = np.array(
        [_LVIS_FREQ_WEIGHT[c['frequency']] for c in LVIS_CATEGORIES])
    weights /= weights.sum()
    ids = _unique_ints(rng, num_train + num_val, 1, 581930)
    val_cover = [names[i] for i in rng.permutation(len(names))]
    plan = {}
    for split, id_slice in (('train', ids[:num_train]),
                            ('val', ids[num_train:])):
        images = []
        for k, img_id in enumerate(id_slice):
            if split == 'train' and k < len(_LVIS_FIXED_TRAIN):
                objs = list(_LVIS_FIXED_TRAIN[k])
            elif split == 'val' and k < num_fixed_val:
                objs = val_cover[3 * k:3 * k + 3]
            else:
                objs = _draw_objects(rng, names, weights, 1, 4)
            # LVIS v1 validation images come from COCO's val2017 and
            # train2017; its training images from train2017.
            folder = ('val2017' if split == 'val' and k % 2 == 0 else
                      'train2017')
            width, height = COCO_SIZES[int(rng.integers(len(COCO_SIZES)))]
            present = sorted({cat_id[n] for n in objs})
            absent = [i for i in sorted(cat_id.values()) if i not in present]
            neg = sorted(
                int(i) for i in rng.choice(absent, size=2, replace=False))
            not_exhaustive = ([int(rng.choice(present))]
                              if rng.random() < 0.25 else [])
            boxes = _float_boxes(rng, width, height, len(objs), k)
            images.append(
                dict(id=img_id, folder=folder, width=width, height=height,
                     neg_category_ids=neg,
                     not_exhaustive_category_ids=not_exhaustive,
                     objects=[dict(name=n, box=b)
                              for n, b in zip(objs, boxes)]))
        plan[split] = images
    return plan


def _lvis_file(images: Sequence[dict], first_ann_id: int,
               categories: Sequence[dict]) -> dict:
    cat_id = {c['name']: c['id'] for c in categories}
    img_entries, anns = [], []
    for im in images:
        file_name = f'{im["id"]:012d}.jpg'
        img_entries.append(
            dict(date_captured='2013-11-14 17:02:52',
                 neg_category_ids=im['neg_category_ids'], id=im['id'],
                 license=1, height=im['height'], width=im['width'],
                 flickr_url='',
                 coco_url=f'{_COCO_URL}/{im["folder"]}/{file_name}',
                 not_exhaustive_category_ids=im[
                     'not_exhaustive_category_ids']))
        for obj in im['objects']:
            x, y, w, h = _xywh(obj['box'])
            anns.append(
                dict(area=round(w * h, 4), id=first_ann_id + len(anns),
                     segmentation=[_rect_polygon(x, y, w, h)],
                     image_id=im['id'], bbox=[x, y, w, h],
                     category_id=cat_id[obj['name']]))
    return dict(
        info=dict(description='LVIS v1 (mmovl miniature: synthetic images, '
                  f'{len(categories)} categories)', url='http://lvisdataset'
                  '.org', version='1.0', year=2020, contributor='mmovl',
                  date_created='2020/01/01'),
        licenses=[dict(url='', id=1, name='synthetic, no license needed')],
        images=img_entries,
        annotations=anns,
        categories=[dict(c) for c in categories])


def make_lvis(root: str, seed: int = 0, num_train: int = 16,
              num_val: int = 10) -> dict:
    """Write a miniature LVIS v1 under ``root`` (``data/lvis_v1``).

    Writes ``annotations/lvis_v1_train.json`` and ``lvis_v1_val.json`` in
    the official format (images with ``coco_url``, ``neg_category_ids`` and
    ``not_exhaustive_category_ids``; categories with ``synset``,
    ``synonyms``, ``def``, ``frequency``, ``image_count`` and
    ``instance_count`` (counted on the miniature's training set, as the
    official counts are on the real one); annotations with a rectangle
    polygon) and the images under ``train2017/`` and ``val2017/``, where
    mmdet's ``LVISV1Dataset`` looks for them (the last two parts of
    ``coco_url``). The vocabulary is :data:`LVIS_CATEGORIES`; the training
    set has rare annotations too (``class_split='base'`` drops them), the
    validation set every category.

    Args:
        root (str): The data root.
        seed (int): Random seed. Defaults to 0.
        num_train (int): Training images. Defaults to 16.
        num_val (int): Validation images. Defaults to 10.

    Returns:
        dict: Counts, the files written and the class names by frequency.
    """
    plan = plan_lvis(seed, num_train, num_val)
    tag = _SEED_TAGS['lvis']
    images_per_cat: Dict[str, set] = {}
    instances_per_cat: Counter = Counter()
    for im in plan['train']:
        for obj in im['objects']:
            images_per_cat.setdefault(obj['name'], set()).add(im['id'])
            instances_per_cat[obj['name']] += 1
    categories = [
        dict(c, image_count=len(images_per_cat.get(c['name'], ())),
             instance_count=instances_per_cat[c['name']])
        for c in LVIS_CATEGORIES
    ]
    files, index, next_ann = {}, 0, 1
    for split in ('train', 'val'):
        for im in plan[split]:
            _paint(
                osp.join(root, im['folder'], f'{im["id"]:012d}.jpg'), seed,
                tag, index, im['width'], im['height'],
                [o['box'] for o in im['objects']],
                [o['name'] for o in im['objects']])
            index += 1
        lvis = _lvis_file(plan[split], next_ann, categories)
        next_ann += len(lvis['annotations'])
        files[split] = atomic_write_json(
            osp.join(root, 'annotations', f'lvis_v1_{split}.json'), lvis,
            compact=True)

    def by_freq(freq: str) -> Tuple[str, ...]:
        return tuple(c['name'] for c in LVIS_CATEGORIES
                     if c['frequency'] == freq)

    return dict(
        root=root,
        seed=seed,
        num_train=len(plan['train']),
        num_val=len(plan['val']),
        num_annotations=next_ann - 1,
        classes=tuple(c['name'] for c in LVIS_CATEGORIES),
        frequent=by_freq('f'),
        common=by_freq('c'),
        rare=by_freq('r'),
        files=files)
