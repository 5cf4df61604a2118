# Copyright (c) mmovl contributors. All rights reserved.
"""Helpers of the long-tailed split converters (COCO-LT, VOC-LT): reading a
released image-id list, the per-class image counts and head / medium / tail
groups (the converters write their JSON with
:func:`mmovl.utils.fileio.atomic_write_json`). No registry."""
import os.path as osp
import textwrap
from collections import defaultdict
from typing import Callable, Dict, List, Tuple

from mmovl.evaluation.metrics.zsl_multi_label import HEAD_THR, TAIL_THR


def read_id_list(path: str, parse: Callable) -> List[Tuple[int, object]]:
    """Read a text file of image ids, one a line.

    Args:
        path (str): The text file (UTF-8; blank lines are skipped).
        parse (Callable): Turns a stripped line into an id; raises
            ValueError for a bad one.

    Returns:
        list[tuple[int, object]]: ``(line number, id)`` in file order.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'image id list not found: {path}')
    with open(path, 'rb') as f:
        data = f.read()
    if data[:1] == b'\x80':
        raise ValueError(
            f'{path} is a binary pickle; this tool reads text (one image id '
            'a line) and never unpickles. See the docstring of this tool '
            '(run it with -h) to turn a trusted pickle into text.')
    try:
        text = data.decode('utf-8-sig')
    except UnicodeDecodeError as e:
        raise ValueError(f'{path} is not UTF-8 text (bad byte at offset '
                         f'{e.start}); expected one image id a line') from None
    entries, first_line = [], {}
    for lineno, line in enumerate(text.split('\n'), 1):
        token = line.strip()
        if not token:
            continue
        try:
            img_id = parse(token)
        except ValueError as e:
            raise ValueError(f'{path}, line {lineno}: {e}') from None
        if img_id in first_line:
            raise ValueError(f'{path}, line {lineno}: image id {token} '
                             f'repeats line {first_line[img_id]}')
        first_line[img_id] = lineno
        entries.append((lineno, img_id))
    if not entries:
        raise ValueError(f'{path} lists no image ids')
    return entries


def class_image_counts(coco: dict) -> List[Tuple[str, int]]:
    """``(name, images with that category)`` in category order."""
    images = defaultdict(set)
    for a in coco['annotations']:
        images[a['category_id']].add(a['image_id'])
    return [(c['name'], len(images[c['id']])) for c in coco['categories']]


def frequency_group(count: int) -> str:
    """'head', 'medium' or 'tail' for a class with ``count`` images."""
    if count >= HEAD_THR:
        return 'head'
    return 'tail' if count < TAIL_THR else 'medium'


def long_tail_summary(coco: dict) -> str:
    """Image counts per class and the head / medium / tail groups."""
    groups: Dict[str, List[str]] = dict(head=[], medium=[], tail=[])
    counts = class_image_counts(coco)
    for name, count in sorted(counts, key=lambda nc: -nc[1]):
        groups[frequency_group(count)].append(f'{name} {count}')
    labelled = {a['image_id'] for a in coco['annotations']}
    unlabelled = sum(img['id'] not in labelled for img in coco['images'])
    lines = [
        f'{len(coco["images"])} images ({unlabelled} without any label), '
        f'{len(coco["annotations"])} annotations',
        f'{len(counts)} classes: {len(groups["head"])} head '
        f'(>= {HEAD_THR} images), {len(groups["medium"])} medium '
        f'({TAIL_THR}-{HEAD_THR - 1}), {len(groups["tail"])} tail '
        f'(< {TAIL_THR})'
    ]
    for group, members in groups.items():
        if members:
            lines.append(
                textwrap.fill(f'{group}: ' + ', '.join(members), width=79,
                              subsequent_indent='    '))
    return '\n'.join(lines)
