# Copyright (c) mmovl contributors. All rights reserved.
"""Synthetic photographs for the miniature data sets.

Images have the sizes real images of each data set have (a Flickr thumbnail
is about 500 x 375, a COCO image 640 x 480, an Open Images one 1024 x 768)
and carry coloured rectangles where their boxes are, so a detector's boxes
and a classifier's labels refer to something visible.
"""
from typing import Optional, Sequence, Tuple

import numpy as np

from mmovl.utils import atomic_write

__all__ = ['synth_image', 'write_jpeg', 'random_boxes']


def random_boxes(rng: np.random.Generator, width: int, height: int,
                 num: int, min_frac: float = 0.1,
                 max_frac: float = 0.6) -> np.ndarray:
    """``num`` random boxes ``(x1, y1, x2, y2)`` inside a ``width x height``
    image, each side between ``min_frac`` and ``max_frac`` of the image's."""
    boxes = np.zeros((num, 4), dtype=np.float64)
    for i in range(num):
        w = rng.uniform(min_frac, max_frac) * width
        h = rng.uniform(min_frac, max_frac) * height
        x1 = rng.uniform(0, width - w)
        y1 = rng.uniform(0, height - h)
        boxes[i] = (x1, y1, x1 + w, y1 + h)
    return np.round(boxes, 2)


def synth_image(rng: np.random.Generator, width: int, height: int,
                boxes: Optional[Sequence[Sequence[float]]] = None,
                colours: Optional[Sequence[Tuple[int, int, int]]] = None
                ) -> np.ndarray:
    """A ``height x width x 3`` uint8 BGR image: a noisy gradient with a
    filled rectangle for each box (a random colour unless ``colours``)."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = rng.uniform(40, 200, size=3).astype(np.float32)
    slope = rng.uniform(-60, 60, size=(2, 3)).astype(np.float32)
    img = (base + xx[..., None] / max(width, 1) * slope[0] +
           yy[..., None] / max(height, 1) * slope[1])
    img += rng.normal(0, 8, size=img.shape).astype(np.float32)
    for i, box in enumerate(boxes if boxes is not None else []):
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        colour = (colours[i] if colours is not None else
                  rng.integers(0, 256, size=3))
        img[max(y1, 0):max(y2, 0), max(x1, 0):max(x2, 0)] = colour
    return np.clip(img, 0, 255).astype(np.uint8)


def write_jpeg(path: str, img: np.ndarray) -> str:
    """Write ``img`` (BGR uint8) as a JPEG at ``path``, atomically."""
    import cv2

    def _write(tmp: str) -> None:
        ok, buf = cv2.imencode('.jpg', img, [cv2.IMWRITE_JPEG_QUALITY, 90])
        if not ok:
            raise OSError(f'could not encode {path} as JPEG')
        with open(tmp, 'wb') as f:
            f.write(buf.tobytes())

    return atomic_write(path, _write)
