# Copyright (c) mmovl contributors. All rights reserved.
"""Transforms that turn UniCL data infos into image-text-label samples."""
import math
from typing import Sequence, Tuple, Union

import numpy as np
from mmcv.transforms import BaseTransform
from mmcv.transforms.utils import cache_randomness
from mmpretrain.registry import TRANSFORMS


@TRANSFORMS.register_module()
class CropBox(BaseTransform):
    """Crop the image to ``crop_bbox``, enlarged by a random scale.

    The box is scaled about its centre by a factor drawn uniformly from
    ``scale_range`` (ViLD embeds 1x and 1.5x crops of each region, so the
    default covers that range), rounded outwards to whole pixels and clipped
    to the image. Samples without ``crop_bbox`` pass through unchanged, so
    one pipeline serves crops, whole images and captions.

    **Required Keys:** ``img``; ``crop_bbox`` (``[x1, y1, x2, y2]``,
    optional).

    **Modified Keys:** ``img``, ``img_shape``.

    Args:
        scale_range (Sequence[float]): ``(low, high)`` of the box scale,
            ``0 < low <= high``. Defaults to ``(1.0, 1.5)``.

    Examples:
        >>> import numpy as np
        >>> from mmovl.datasets.transforms import CropBox
        >>> img = np.zeros((64, 64, 3), np.uint8)
        >>> out = CropBox(scale_range=(1.0, 1.0))(
        ...     dict(img=img, crop_bbox=[10.5, 20, 30, 40]))
        >>> out['img_shape']
        (20, 20)
    """

    def __init__(self, scale_range: Sequence[float] = (1.0, 1.5)) -> None:
        if len(scale_range) != 2 or not 0 < scale_range[0] <= scale_range[1]:
            raise ValueError('scale_range must be (low, high) with '
                             f'0 < low <= high, got {scale_range!r}')
        self.scale_range: Tuple[float, float] = (float(scale_range[0]),
                                                 float(scale_range[1]))

    @cache_randomness
    def _random_scale(self) -> float:
        low, high = self.scale_range
        return low if low == high else float(np.random.uniform(low, high))

    def transform(self, results: dict) -> dict:
        """Crop ``results['img']`` to its enlarged ``crop_bbox``."""
        bbox = results.get('crop_bbox')
        if bbox is None:
            return results
        img = results['img']
        height, width = img.shape[:2]
        x1, y1, x2, y2 = (float(v) for v in bbox)
        if not (x2 > x1 and y2 > y1):
            raise ValueError(f'{results.get("img_path", "image")}: crop_bbox '
                             f'{list(bbox)} is empty (expects [x1, y1, x2, '
                             f'y2])')
        if x2 <= 0 or y2 <= 0 or x1 >= width or y1 >= height:
            raise ValueError(f'{results.get("img_path", "image")}: crop_bbox '
                             f'{list(bbox)} lies outside the {width}x{height} '
                             f'image')
        # Grow each side by (scale - 1) / 2 of the box size; written this way
        # rather than centre +- half size so that scale 1 keeps the box exact.
        grow = (self._random_scale() - 1) / 2
        dx, dy = grow * (x2 - x1), grow * (y2 - y1)
        left = min(max(math.floor(x1 - dx), 0), width - 1)
        top = min(max(math.floor(y1 - dy), 0), height - 1)
        right = min(max(math.ceil(x2 + dx), left + 1), width)
        bottom = min(max(math.ceil(y2 + dy), top + 1), height)
        results['img'] = np.ascontiguousarray(img[top:bottom, left:right])
        results['img_shape'] = results['img'].shape[:2]
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(scale_range={self.scale_range})'


@TRANSFORMS.register_module()
class PromptText(BaseTransform):
    """Make a label sample's text from its class name and a prompt template.

    Samples that already have ``text`` (captions) pass through unchanged.
    Otherwise ``text = template.format(class_name)``, the template drawn at
    random on every call, so each epoch sees the class under new phrasings
    (UniCL's prompt augmentation), or always the first one when
    ``random=False`` (for validation).

    **Required Keys:** ``text`` or ``class_name``.

    **Added Keys:** ``text``.

    Args:
        templates (str | Sequence[str]): ``'ensemble'`` (mmovl's
            ``ENSEMBLE_TEMPLATES``), ``'default'`` (``'a photo of a {}.'``),
            one template with ``'{}'``, or a sequence of them, as
            :func:`mmovl.models.teachers.templates.resolve_templates` reads
            them. Defaults to ``'ensemble'``.
        random (bool): Draw the template at random. Defaults to True.

    Examples:
        >>> from mmovl.datasets.transforms import PromptText
        >>> PromptText(random=False)(dict(class_name='red circle'))['text']
        'a photo of a red circle.'
    """

    def __init__(self,
                 templates: Union[str, Sequence[str]] = 'ensemble',
                 random: bool = True) -> None:
        # Lazy: the templates live with the models, which import datasets.
        from mmovl.models.teachers.templates import resolve_templates
        self.templates = resolve_templates(templates)
        self.random = random

    @cache_randomness
    def _random_index(self) -> int:
        return int(np.random.randint(len(self.templates)))

    def transform(self, results: dict) -> dict:
        """Set ``results['text']`` unless it is already there."""
        if results.get('text') is not None:
            return results
        if results.get('class_name') is None:
            raise KeyError(f'{results.get("img_path", "sample")}: PromptText '
                           f'needs "text" or "class_name" in the results')
        index = self._random_index() if self.random else 0
        results['text'] = self.templates[index].format(results['class_name'])
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}('
                f'templates={len(self.templates)} templates, '
                f'random={self.random})')
