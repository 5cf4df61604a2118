# Copyright (c) mmovl contributors. All rights reserved.
import os.path as osp
from typing import List

from mmengine.logging import MMLogger
from mmpretrain.datasets import BaseDataset
from mmpretrain.registry import DATASETS

from ..utils import load_json
from ..utils.vocabulary import check_unique_names


@DATASETS.register_module()
class CocoObjectCrops(BaseDataset):
    """Single-label classification samples, one per box of a COCO file.

    Each box of a COCO instances file becomes one sample whose label is the
    box's category, so multi-object detection data (COCO, LVIS, the toy
    world) serves as clean image-label data. The image is not cropped here:
    the sample carries ``crop_bbox`` and the pipeline's
    :class:`~mmovl.datasets.transforms.CropBox` cuts it out after loading,
    optionally enlarged as ViLD's 1.5x crops are.

    Data infos: ``img_path``, ``gt_label`` (int, index into ``classes``),
    ``crop_bbox`` (``[x1, y1, x2, y2]`` in pixels), ``img_id`` and
    ``ann_id``. The metainfo ``classes`` are the category names, categories
    sorted by id.

    Args:
        ann_file (str): COCO instances json, relative to ``data_root``.
        min_size (float): Boxes whose width or height is below this many
            pixels are skipped. Defaults to 8.
        data_root (str): Root of ``ann_file`` and ``data_prefix``.
            Defaults to ''.
        **kwargs: Passed to :class:`mmpretrain.datasets.BaseDataset`
            (``data_prefix`` for the image folder, ``pipeline``...).

    Examples:
        >>> from mmovl.datasets.coco_object_crops import CocoObjectCrops
        >>> ds = CocoObjectCrops(  # doctest: +SKIP
        ...     data_root='data/toy_world',
        ...     ann_file='annotations/instances_train.json',
        ...     data_prefix='train')
        >>> ds[0]['crop_bbox']  # doctest: +SKIP
        [12.5, 3.1, 30.0, 21.7]
    """

    def __init__(self,
                 ann_file: str,
                 min_size: float = 8,
                 data_root: str = '',
                 **kwargs) -> None:
        if min_size < 0:
            raise ValueError(f'min_size must be >= 0, got {min_size}')
        self.min_size = min_size
        super().__init__(ann_file=ann_file, data_root=data_root, **kwargs)

    def load_data_list(self) -> List[dict]:
        ann = load_json(self.ann_file)
        for key in ('images', 'annotations', 'categories'):
            if key not in ann:
                raise ValueError(f'{self.ann_file} is not a COCO instances '
                                 f'file: no "{key}" field')
        cats = sorted(ann['categories'], key=lambda c: c['id'])
        names = [c['name'] for c in cats]
        check_unique_names(names, 'category names', self.ann_file)
        cat_to_label = {c['id']: i for i, c in enumerate(cats)}
        files = {img['id']: img['file_name'] for img in ann['images']}

        img_prefix = self.data_prefix.get('img_path', '')
        data_list, crowd, small = [], 0, 0
        for a in ann['annotations']:
            ann_id = a.get('id')
            if a['category_id'] not in cat_to_label:
                raise ValueError(f'{self.ann_file}: annotation {ann_id} has '
                                 f'unknown category_id {a["category_id"]}')
            if a['image_id'] not in files:
                raise ValueError(f'{self.ann_file}: annotation {ann_id} has '
                                 f'unknown image_id {a["image_id"]}')
            if a.get('iscrowd', 0):
                crowd += 1
                continue
            x, y, w, h = (float(v) for v in a['bbox'])
            if w <= 0 or h <= 0 or min(w, h) < self.min_size:
                small += 1
                continue
            data_list.append(
                dict(
                    img_path=osp.join(img_prefix, files[a['image_id']]),
                    gt_label=cat_to_label[a['category_id']],
                    crop_bbox=[x, y, x + w, y + h],
                    img_id=a['image_id'],
                    ann_id=ann_id))
        if crowd or small:
            MMLogger.get_current_instance().info(
                f'{self.ann_file}: skipped {crowd} crowd boxes and {small} '
                f'boxes smaller than min_size={self.min_size}')
        self._metainfo['classes'] = tuple(names)
        return data_list

    def extra_repr(self) -> List[str]:
        """The extra repr information of the dataset."""
        return super().extra_repr() + [f'Minimum box side: \t{self.min_size}']
