# Copyright (c) mmovl contributors. All rights reserved.
"""Write PASCAL VOC annotations as a COCO instances file (VOC-LT, VOC07).

VOC-LT (Wu et al. 2020, distribution-balanced loss) trains on 1,142 images
of VOC2012 trainval (20 classes) and tests on the 4,952 images of the VOC2007
test set. This tool reads the VOC XML files of an id list and writes them in
the COCO format that :class:`mmovl.datasets.CocoMultiLabelDataset` reads:

    # training set: the 1,142 listed images of VOC2012 trainval
    python tools/dataset_converters/voc_lt_split.py \\
        --voc-root data/voc/VOC2012 \\
        --img-ids data/voc/annotations/voc_lt_img_ids.txt \\
        --out data/voc/annotations/voc_lt_train.json

    # test set: ImageSets/Main/test.txt of VOC2007
    python tools/dataset_converters/voc_lt_split.py \\
        --voc-root data/voc/VOC2007 --image-set test \\
        --out data/voc/annotations/voc07_test.json

``--voc-root`` is one year's folder of the devkit (``VOCdevkit/VOC2012``),
holding ``Annotations/<id>.xml``, ``JPEGImages/<id>.jpg`` and
``ImageSets/Main/<set>.txt``. The images are listed either by ``--img-ids``
(a text file, one VOC image id such as ``2008_000123`` a line; blank lines
and white space around an id are ignored) or by ``--image-set`` (the ids of
``ImageSets/Main/<set>.txt``). The list of the release (github wutong16/
DistributionBalancedLoss, ``appendix/VOCdevkit/longtail2012/img_id.txt``) is
such a file. This tool never unpickles anything; it refuses a binary pickle.
If you have a real pickle of ids and trust it, turn it into text yourself:

    python -c "import pickle, sys; print(*pickle.load(sys.stdin.buffer), \\
        sep='\\n')" < img_id.pkl > voc_lt_img_ids.txt

Output (written to a temporary file and renamed; identical inputs give
identical bytes):

- ``images``: in list order; ``file_name`` is ``JPEGImages/<id>.jpg``, so a
  dataset's ``data_prefix`` is the year folder (``VOC2012``, ``VOC2007``
  under ``data_root``); ``width`` and ``height`` from the XML; ``id`` is the
  VOC id's digits as an integer (``2008_000123`` -> 2008000123, ``000001``
  -> 1).
- ``annotations``: one per ``<object>``, ``category_id`` 1-20 in VOC's
  order, ``bbox`` ``[x, y, w, h]`` from VOC's 1-based inclusive corners
  (``x = xmin - 1``, ``w = xmax - xmin + 1``), ``area`` ``w * h``,
  ``iscrowd`` 0 and ``difficult`` 0/1 as in the XML. Objects marked
  difficult are kept by default: the multi-label classification protocol of
  these benchmarks labels an image with every object class in it (the
  release's loader reads every ``<object>``). ``--skip-difficult`` drops
  them, and an image whose objects are all difficult then has no label.
- ``categories``: readable names for the text encoder (``dining table``,
  ``potted plant``, ``tv monitor``...), VOC's identifier in ``voc_name``.

The tool prints each class's number of images and the head (>= 100 images) /
medium (20-99) / tail (< 20) groups (meaningful for the training file).
"""
import argparse
import math
import os.path as osp
import re
import xml.etree.ElementTree as ET
from typing import Dict, List, Tuple

from mmovl.datasets.long_tail import long_tail_summary, read_id_list
from mmovl.utils.fileio import atomic_write_json
from mmovl.utils.progress import Progress

# VOC's class identifiers in the devkit's order (category ids 1-20) and
# the names written for them.
VOC_CLASSES = ('aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car',
               'cat', 'chair', 'cow', 'diningtable', 'dog', 'horse',
               'motorbike', 'person', 'pottedplant', 'sheep', 'sofa',
               'train', 'tvmonitor')
READABLE_NAMES = {
    'diningtable': 'dining table',
    'pottedplant': 'potted plant',
    'tvmonitor': 'tv monitor',
}


def parse_voc_id(token: str) -> str:
    """Check a VOC image id: digits, or digits_digits (``2008_000123``)."""
    if not re.fullmatch(r'[0-9]+(_[0-9]+)?', token):
        raise ValueError(f'{token!r} is not a VOC image id (like '
                         '2008_000123 or 000001)')
    return token


def coco_image_id(voc_id: str) -> int:
    """The integer id written for a VOC id: its digits."""
    return int(voc_id.replace('_', ''))


def _text(parent: ET.Element, tag: str, where: str) -> str:
    node = parent.find(tag)
    if node is None or node.text is None or not node.text.strip():
        raise ValueError(f'{where}: no <{tag}>')
    return node.text.strip()


def _number(parent: ET.Element, tag: str, where: str):
    text = _text(parent, tag, where)
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise ValueError(f'{where}: <{tag}> is {text!r}, not a number')
    return value


def parse_voc_xml(path: str, skip_difficult: bool = False):
    """Read one VOC annotation.

    Args:
        path (str): The XML file.
        skip_difficult (bool): Leave out objects marked difficult.

    Returns:
        tuple: ``(width, height, objects)``, each object a dict with
        ``category_id`` (1-20), ``bbox`` (COCO ``[x, y, w, h]``) and
        ``difficult`` (0 or 1), in file order.
    """
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as e:
        raise ValueError(f'{path} is not valid XML: {e}') from None
    size = root.find('size')
    if size is None:
        raise ValueError(f'{path}: no <size>')
    width = _number(size, 'width', path)
    height = _number(size, 'height', path)
    if not (isinstance(width, int) and isinstance(height, int) and width > 0
            and height > 0):
        raise ValueError(f'{path}: bad image size {width} x {height}')
    objects = []
    for k, obj in enumerate(root.findall('object'), 1):
        where = f'{path}, object {k}'
        name = _text(obj, 'name', where)
        if name not in VOC_CLASSES:
            raise ValueError(f'{where}: unknown class {name!r} (VOC\'s '
                             f'classes: {", ".join(VOC_CLASSES)})')
        difficult = 0  # no <difficult> tag: not difficult
        if (obj.findtext('difficult') or '').strip():
            difficult = _number(obj, 'difficult', where)
        if difficult not in (0, 1):
            raise ValueError(f'{where}: <difficult> is {difficult}, not 0/1')
        box = obj.find('bndbox')
        if box is None:
            raise ValueError(f'{where} ({name}): no <bndbox>')
        xmin, ymin, xmax, ymax = (
            _number(box, tag, f'{where} ({name})')
            for tag in ('xmin', 'ymin', 'xmax', 'ymax'))
        if xmax < xmin or ymax < ymin:
            raise ValueError(f'{where} ({name}): malformed box xmin {xmin}, '
                             f'ymin {ymin}, xmax {xmax}, ymax {ymax}')
        if difficult and skip_difficult:
            continue
        objects.append(
            dict(
                category_id=VOC_CLASSES.index(name) + 1,
                bbox=[xmin - 1, ymin - 1, xmax - xmin + 1, ymax - ymin + 1],
                difficult=int(difficult)))
    return width, height, objects


def convert(voc_root: str,
            entries: List[Tuple[int, str]],
            list_path: str,
            skip_difficult: bool = False,
            progress: bool = True) -> dict:
    """Build the COCO dict of the listed VOC images.

    Args:
        voc_root (str): The year folder (``.../VOC2012``).
        entries (list[tuple[int, str]]): ``(line number, VOC id)`` of the
            images, as :func:`read_id_list` gives.
        list_path (str): The id list, for error messages.
        skip_difficult (bool): Leave out objects marked difficult.
        progress (bool): Show the progress (a bar on a terminal, a few
            lines otherwise).

    Returns:
        dict: ``info``, ``images``, ``annotations``, ``categories``.
    """
    first_line: Dict[int, Tuple[int, str]] = {}
    for lineno, voc_id in entries:
        img_id = coco_image_id(voc_id)
        if img_id in first_line:
            raise ValueError(
                f'{list_path}, line {lineno}: image id {voc_id} gives the '
                f'same integer id {img_id} as {first_line[img_id][1]} of line '
                f'{first_line[img_id][0]}')
        first_line[img_id] = (lineno, voc_id)
    images, annotations = [], []
    bar = Progress(len(entries), 'VOC annotations') if progress else None
    for lineno, voc_id in entries:
        xml_path = osp.join(voc_root, 'Annotations', f'{voc_id}.xml')
        if not osp.isfile(xml_path):
            raise FileNotFoundError(f'{xml_path} not found (image id {voc_id} '
                                    f'of {list_path}, line {lineno})')
        width, height, objects = parse_voc_xml(xml_path, skip_difficult)
        img_id = coco_image_id(voc_id)
        images.append(
            dict(
                id=img_id,
                file_name=f'JPEGImages/{voc_id}.jpg',
                width=width,
                height=height))
        for obj in objects:
            w, h = obj['bbox'][2:]
            annotations.append(
                dict(
                    id=len(annotations) + 1,
                    image_id=img_id,
                    category_id=obj['category_id'],
                    bbox=obj['bbox'],
                    area=w * h,
                    iscrowd=0,
                    difficult=obj['difficult']))
        if bar is not None:
            bar.update()
    if bar is not None:
        bar.close()
    source = f'{osp.basename(osp.normpath(voc_root))}, ' \
        f'{osp.basename(list_path)}'
    return dict(
        info=dict(description=f'PASCAL VOC ({source}) in COCO format, '
                  'by mmovl tools/dataset_converters/voc_lt_split.py'),
        images=images,
        annotations=annotations,
        categories=[
            dict(id=i + 1, name=READABLE_NAMES.get(n, n), voc_name=n)
            for i, n in enumerate(VOC_CLASSES)
        ])


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        '--voc-root',
        required=True,
        help='a VOC year folder (with Annotations/, JPEGImages/, '
        'ImageSets/Main/), e.g. data/voc/VOC2012')
    ids = parser.add_mutually_exclusive_group(required=True)
    ids.add_argument(
        '--img-ids', help='text file of VOC image ids, one a line')
    ids.add_argument(
        '--image-set',
        help='take the ids of ImageSets/Main/<IMAGE_SET>.txt, e.g. test')
    parser.add_argument('--out', required=True, help='output JSON')
    parser.add_argument(
        '--skip-difficult',
        action='store_true',
        help='leave out objects marked difficult (default: keep them as '
        'labels, as the VOC-LT protocol does)')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if not osp.isdir(args.voc_root):
        raise FileNotFoundError(f'VOC folder not found: {args.voc_root}')
    list_path = args.img_ids or osp.join(args.voc_root, 'ImageSets', 'Main',
                                         f'{args.image_set}.txt')
    entries = read_id_list(list_path, parse_voc_id)
    coco = convert(args.voc_root, entries, list_path, args.skip_difficult)
    atomic_write_json(args.out, coco, compact=True)
    print(f'{args.out}:\n{long_tail_summary(coco)}')
    no_jpeg = sum(not osp.isfile(osp.join(args.voc_root, img['file_name']))
                  for img in coco['images'])
    if no_jpeg:
        print(f'note: {no_jpeg} of the {len(coco["images"])} images are '
              f'not under {osp.join(args.voc_root, "JPEGImages")}')


if __name__ == '__main__':
    main()
