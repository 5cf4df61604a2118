# Copyright (c) mmovl contributors. All rights reserved.
"""NUS-WIDE with MKT's open-vocabulary split: the dataset. The compact
annotation and the base class are in :mod:`mmovl.datasets.mkt_split`, the
official files' parser in :mod:`mmovl.datasets.nus_wide_official`."""
import os.path as osp
import re
from typing import Dict

import numpy as np
from mmengine.logging import MMLogger
from mmpretrain.registry import DATASETS

from .mkt_split import MKTSplitDataset
from .nus_wide_official import load_nus_wide


@DATASETS.register_module()
class NUSWideDataset(MKTSplitDataset):
    """NUS-WIDE for open-vocabulary multi-label classification, MKT's split.

    The vocabulary (see
    :func:`mmovl.datasets.nus_wide_official.nus_wide_vocabulary`): 925 seen
    labels (the Flickr user tags of ``TagList1k.txt`` that are not concepts)
    for training, and the 81 human-verified concepts as unseen labels;
    ``label_split='all'`` is the 1,006 labels, seen first. Every label of
    every image is known, so ``gt_score`` is 1 or 0 (never -1 unknown).

    Images: ``<data_root>/<data_prefix>/<folder>/<file>``, the official
    ``Flickr`` layout by default. Which images exist varies between copies
    of NUS-WIDE (it is crawled from Flickr); see ``missing``.

    ``ann_file`` is either

    - a compact annotation (``*.npz``) from
      ``tools/dataset_converters/nus_wide_mkt_split.py`` (fast), or
    - an official split list, ``ImageList/TrainImagelist.txt`` or
      ``ImageList/TestImagelist.txt``: the rest of the official files are
      read from the folder above ``ImageList`` (see
      :func:`mmovl.datasets.nus_wide_official.load_nus_wide`;
      parsing the 1k-tag matrix takes a while).

    Args:
        ann_file (str): The annotation, relative to ``data_root``.
        label_split (str): ``'all'``, ``'seen'`` or ``'unseen'``.
            Defaults to ``'all'``.
        label_source (str): For official files, which tag and concept files
            to read: ``'auto'``, ``'all'`` or ``'split'`` (see
            :func:`mmovl.datasets.nus_wide_official.load_nus_wide`).
            Defaults to ``'auto'``.
        data_prefix (str | dict): Image folder, relative to ``data_root``.
            Defaults to ``'Flickr'``.
        **kwargs: ``missing``, ``filter_empty``, ``with_gt_score`` (see
            :class:`mmovl.datasets.mkt_split.MKTSplitDataset`) and the
            arguments of :class:`mmpretrain.datasets.MultiLabelDataset`.

    Examples:
        >>> from mmovl.datasets.nus_wide import NUSWideDataset
        >>> test_set = NUSWideDataset(  # doctest: +SKIP
        ...     data_root='data/nus_wide',
        ...     ann_file='annotations/nus_wide_mkt_test.npz',
        ...     label_split='all')
        >>> len(test_set.metainfo['classes'])  # doctest: +SKIP
        1006
    """
    DATASET = 'NUS-WIDE'

    def __init__(self,
                 ann_file: str,
                 label_split: str = 'all',
                 label_source: str = 'auto',
                 data_prefix='Flickr',
                 **kwargs) -> None:
        self.label_source = label_source
        super().__init__(
            ann_file=ann_file,
            label_split=label_split,
            data_prefix=data_prefix,
            **kwargs)

    def _load_official(self) -> Dict[str, np.ndarray]:
        match = re.fullmatch(r'(Train|Test)Imagelist\.txt',
                             osp.basename(self.ann_file))
        if match is None:
            raise ValueError(
                f'{self.ann_file}: expected a .npz annotation or '
                'ImageList/TrainImagelist.txt / TestImagelist.txt')
        root = osp.dirname(osp.dirname(osp.abspath(self.ann_file)))
        ann = load_nus_wide(root, match.group(1), self.label_source)
        MMLogger.get_current_instance().info(
            f'NUS-WIDE {match.group(1)}: {len(ann["img_paths"])} images, '
            f'{len(ann["seen_classes"])} seen and '
            f'{len(ann["unseen_classes"])} unseen labels, read from the '
            'official files (convert them once with tools/dataset_converters'
            '/nus_wide_mkt_split.py to load faster)')
        return ann
