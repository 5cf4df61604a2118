# Copyright (c) mmovl contributors. All rights reserved.
"""The toy world: a procedurally generated open-vocabulary data set.

Small images hold one to four coloured shapes. Each shape's label is its
colour and kind ("red circle"), so every label name is a composition of
words that also occur in other labels. A fixed set of labels is held out as
*unseen*: their words appear in seen labels, but the compositions never do
during training, which is exactly the situation open-vocabulary methods
handle by reading the label name through a text encoder.

The generator writes the formats the real data sets use, so the same
dataset classes read both:

.. code-block:: none

    root/
      train/000000.png ...        train_lt/...      val/...
      annotations/
        instances_{train,train_lt,val}.json   # COCO detection format
        captions_{train,train_lt,val}.json    # COCO captions format
        labels.txt                            # all label names, one a line
        unseen_labels.txt                     # the held-out label names
      toy_world.json                          # generator parameters

``train_lt`` is the long-tailed variant: shape labels are drawn with
power-law frequencies, as in COCO-LT / VOC-LT.

This module needs only numpy and Pillow (no registry).
"""
import json
import math
import os
import os.path as osp
from dataclasses import asdict, dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image, ImageDraw

from mmovl.utils.fileio import atomic_write_json, atomic_write_lines

TOY_WORLD_VERSION = 1

COLORS: Dict[str, Tuple[int, int, int]] = {
    'red': (215, 40, 40),
    'green': (40, 165, 60),
    'blue': (40, 80, 215),
    'yellow': (230, 205, 35),
    'purple': (145, 55, 185),
    'orange': (240, 135, 25),
}
SHAPES: Tuple[str, ...] = ('circle', 'square', 'triangle', 'cross', 'diamond')

#: Every label, colour-major: ``LABELS[i * len(SHAPES) + j]``.
LABELS: Tuple[str, ...] = tuple(f'{c} {s}' for c in COLORS for s in SHAPES)

#: One held-out composition per colour, covering every shape, so each word
#: of an unseen label is still seen in training (in other compositions).
UNSEEN_LABELS: Tuple[str, ...] = tuple(
    f'{c} {SHAPES[i % len(SHAPES)]}' for i, c in enumerate(COLORS))
SEEN_LABELS: Tuple[str, ...] = tuple(
    name for name in LABELS if name not in UNSEEN_LABELS)

_NUMBER_WORDS = ('no', 'a', 'two', 'three', 'four')


@dataclass(frozen=True)
class ToyWorldConfig:
    """Parameters of one toy world; the defaults are the shipped one.

    Args:
        num_train (int): Training images. Defaults to 3000.
        num_train_lt (int): Images of the long-tailed training variant.
            Defaults to 2000.
        num_val (int): Validation / test images. Defaults to 600.
        image_size (int): Side of the square images. Defaults to 64.
        max_objects (int): At most this many shapes per image (at least
            one). Defaults to 4.
        lt_exponent (float): Power-law exponent of the long-tailed label
            frequencies, ``p(rank r) ~ r ** -lt_exponent``. Defaults to 1.6.
        seed (int): Seed of every random choice. Defaults to 0.
    """
    num_train: int = 3000
    num_train_lt: int = 2000
    num_val: int = 600
    image_size: int = 64
    max_objects: int = 4
    lt_exponent: float = 1.6
    seed: int = 0


def label_frequencies(long_tailed: bool, exponent: float,
                      seed: int) -> np.ndarray:
    """Probability of each label (in :data:`LABELS` order) for one object."""
    num = len(LABELS)
    if not long_tailed:
        return np.full(num, 1.0 / num)
    ranks = np.empty(num, dtype=np.int64)
    # A fixed shuffle decides which labels are head and which are tail.
    ranks[np.random.default_rng([seed, 7]).permutation(num)] = np.arange(num)
    weights = (ranks + 1.0)**-exponent
    return weights / weights.sum()


def _shape_polygon(shape: str, cx: float, cy: float,
                   r: float) -> List[Tuple[float, float]]:
    """Outline of a shape of circumradius ``r`` centred on (cx, cy)."""
    if shape == 'circle':
        return [(cx + r * math.cos(a), cy + r * math.sin(a))
                for a in np.linspace(0, 2 * math.pi, 24, endpoint=False)]
    if shape == 'square':
        h = r / math.sqrt(2)
        return [(cx - h, cy - h), (cx + h, cy - h), (cx + h, cy + h),
                (cx - h, cy + h)]
    if shape == 'triangle':
        return [(cx + r * math.cos(a), cy + r * math.sin(a))
                for a in (-math.pi / 2, math.pi / 6, 5 * math.pi / 6)]
    if shape == 'diamond':
        return [(cx, cy - r), (cx + 0.7 * r, cy), (cx, cy + r),
                (cx - 0.7 * r, cy)]
    if shape == 'cross':
        a, b = r * 0.35, r * 0.9
        return [(cx - a, cy - b), (cx + a, cy - b), (cx + a, cy - a),
                (cx + b, cy - a), (cx + b, cy + a), (cx + a, cy + a),
                (cx + a, cy + b), (cx - a, cy + b), (cx - a, cy + a),
                (cx - b, cy + a), (cx - b, cy - a), (cx - a, cy - a)]
    raise ValueError(f'unknown toy-world shape {shape!r}')


def _iou(a: Sequence[float], b: Sequence[float]) -> float:
    ax2, ay2, bx2, by2 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = max(0.0, min(ax2, bx2) - max(a[0], b[0]))
    ih = max(0.0, min(ay2, by2) - max(a[1], b[1]))
    inter = iw * ih
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def caption_for(label_ids: Sequence[int], rng: np.random.Generator) -> str:
    """A short English caption naming every object of an image."""
    counts: Dict[int, int] = {}
    for i in label_ids:
        counts[i] = counts.get(i, 0) + 1
    parts = []
    for i in sorted(counts):
        n = counts[i]
        name = LABELS[i] + ('es' if LABELS[i].endswith('cross') and n > 1
                            else 's' if n > 1 else '')
        parts.append(f'{_NUMBER_WORDS[min(n, 4)]} {name}')
    order = rng.permutation(len(parts))
    parts = [parts[k] for k in order]
    body = parts[0] if len(parts) == 1 else (', '.join(parts[:-1]) +
                                             ' and ' + parts[-1])
    opener = ('there is ', 'a picture of ', 'an image with ',
              '')[rng.integers(4)]
    return f'{opener}{body}.'


def render_image(rng: np.random.Generator, cfg: ToyWorldConfig,
                 probs: np.ndarray) -> Tuple[Image.Image, List[dict]]:
    """Draw one image; returns it with its objects (label id, box, polygon)."""
    size = cfg.image_size
    background = rng.integers(170, 235, size=3)
    noise = rng.integers(-12, 13, size=(size, size, 1))
    canvas = np.clip(background[None, None] + noise, 0, 255).astype(np.uint8)
    image = Image.fromarray(canvas, mode='RGB')
    draw = ImageDraw.Draw(image)
    objects: List[dict] = []
    num = int(rng.integers(1, cfg.max_objects + 1))
    for _ in range(num):
        label = int(rng.choice(len(LABELS), p=probs))
        colour = COLORS[LABELS[label].split()[0]]
        shape = LABELS[label].split()[1]
        for _attempt in range(20):
            r = float(rng.uniform(0.12, 0.22) * size)
            cx = float(rng.uniform(r, size - r))
            cy = float(rng.uniform(r, size - r))
            poly = _shape_polygon(shape, cx, cy, r)
            xs, ys = [p[0] for p in poly], [p[1] for p in poly]
            box = [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]
            if all(_iou(box, o['bbox']) < 0.1 for o in objects):
                break
        else:
            continue  # no free space left: fewer objects in this image
        jitter = rng.integers(-20, 21, size=3)
        fill = tuple(int(v) for v in np.clip(np.array(colour) + jitter, 0,
                                             255))
        draw.polygon(poly, fill=fill)
        objects.append(
            dict(label=label, bbox=[round(v, 2) for v in box],
                 polygon=[round(v, 2) for p in poly for v in p]))
    return image, objects


def generate_split(root: str,
                   split: str,
                   num_images: int,
                   cfg: ToyWorldConfig,
                   long_tailed: bool = False,
                   progress: Optional[Callable[[], None]] = None) -> None:
    """Write one split's images and its COCO instance and caption files."""
    split_id = {'train': 0, 'val': 1, 'train_lt': 2}[split]
    probs = label_frequencies(long_tailed, cfg.lt_exponent, cfg.seed)
    os.makedirs(osp.join(root, split), exist_ok=True)
    images, annotations, captions = [], [], []
    for idx in range(num_images):
        rng = np.random.default_rng([cfg.seed, split_id, idx])
        image, objects = render_image(rng, cfg, probs)
        file_name = f'{idx:06d}.png'
        image.save(osp.join(root, split, file_name))
        image_id = idx + 1
        images.append(
            dict(id=image_id, file_name=file_name, width=cfg.image_size,
                 height=cfg.image_size))
        for obj in objects:
            annotations.append(
                dict(id=len(annotations) + 1, image_id=image_id,
                     category_id=obj['label'] + 1, bbox=obj['bbox'],
                     area=round(obj['bbox'][2] * obj['bbox'][3], 2),
                     segmentation=[obj['polygon']], iscrowd=0))
        captions.append(
            dict(id=image_id, image_id=image_id,
                 caption=caption_for([o['label'] for o in objects], rng)))
        if progress is not None:
            progress()
    categories = [
        dict(id=i + 1, name=name, supercategory=name.split()[1])
        for i, name in enumerate(LABELS)
    ]
    info = dict(description=f'mmovl toy world, {split}',
                version=TOY_WORLD_VERSION)
    ann_dir = osp.join(root, 'annotations')
    atomic_write_json(
        osp.join(ann_dir, f'instances_{split}.json'),
        dict(info=info, images=images, annotations=annotations,
             categories=categories))
    atomic_write_json(
        osp.join(ann_dir, f'captions_{split}.json'),
        dict(info=info, images=images, annotations=captions))


def generate_toy_world(root: str,
                       cfg: ToyWorldConfig = ToyWorldConfig(),
                       progress: Optional[Callable[[], None]] = None,
                       force: bool = False) -> bool:
    """Write the toy world under ``root`` (idempotent).

    A finished world records its parameters in ``root/toy_world.json``,
    written last; a world with the same parameters is not written again, so
    an interrupted run simply starts over.

    Args:
        root (str): Output folder.
        cfg (ToyWorldConfig): Parameters. Defaults to the shipped world.
        progress (callable, optional): Called once per image written.
            Defaults to None.
        force (bool): Regenerate even if an identical world exists.
            Defaults to False.

    Returns:
        bool: False when an identical world was already there.

    Examples:
        >>> import tempfile
        >>> root = tempfile.mkdtemp()
        >>> generate_toy_world(root, ToyWorldConfig(8, 8, 4))
        True
        >>> generate_toy_world(root, ToyWorldConfig(8, 8, 4))
        False
    """
    stamp = osp.join(root, 'toy_world.json')
    params = dict(asdict(cfg), version=TOY_WORLD_VERSION)
    if not force and osp.isfile(stamp):
        with open(stamp, encoding='utf-8') as f:
            if json.load(f) == params:
                return False
    if osp.isfile(stamp):
        os.remove(stamp)
    os.makedirs(osp.join(root, 'annotations'), exist_ok=True)
    generate_split(root, 'train', cfg.num_train, cfg, progress=progress)
    generate_split(
        root, 'train_lt', cfg.num_train_lt, cfg, long_tailed=True,
        progress=progress)
    generate_split(root, 'val', cfg.num_val, cfg, progress=progress)
    atomic_write_lines(osp.join(root, 'annotations', 'labels.txt'), LABELS)
    atomic_write_lines(
        osp.join(root, 'annotations', 'unseen_labels.txt'), UNSEEN_LABELS)
    atomic_write_json(stamp, params)
    return True
