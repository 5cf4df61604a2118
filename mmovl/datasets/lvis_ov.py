# Copyright (c) mmovl contributors. All rights reserved.
from typing import List, Union

from mmdet.datasets import LVISV1Dataset
from mmdet.registry import DATASETS

#: LVIS category frequencies that make up ViLD's base vocabulary
#: (frequent and common); the rare ones are novel.
LVIS_BASE_FREQUENCIES = ('f', 'c')


@DATASETS.register_module()
class LVISV1OVDataset(LVISV1Dataset):
    """LVIS v1 with ViLD's open-vocabulary split.

    Base categories are the frequent and common ones (866 in LVIS v1),
    novel the rare ones (337), read from each category's ``frequency`` in
    the annotation file. ``metainfo`` gets ``classes``, ``base_classes``
    and ``novel_classes`` (tuples of names in category-id order, the order
    labels are given in); any ``classes`` passed in ``metainfo`` is replaced.

    With ``class_split='base'`` (training) the vocabulary is the base
    categories and annotations of novel ones are dropped; images are kept
    (``filter_cfg=dict(filter_empty_gt=True)`` drops those left without a
    box), so the official ``lvis_v1_train.json`` needs no conversion.
    With ``class_split='all'`` (testing) every category is kept, as
    ``LVISMetric`` (APr / APc / APf) expects; on numpy >= 1.24 evaluate with
    mmovl's ``CompatLVISMetric`` (mmovl's LVIS configs do).

    Args:
        *args: As for ``LVISV1Dataset``.
        class_split (str): ``'base'`` or ``'all'``. Defaults to ``'all'``.
        **kwargs: As for ``LVISV1Dataset``.

    Examples:
        >>> ds = LVISV1OVDataset(  # doctest: +SKIP
        ...     data_root='data/lvis_v1/',
        ...     ann_file='annotations/lvis_v1_train.json',
        ...     data_prefix=dict(img=''), class_split='base')
        >>> meta = ds.metainfo  # doctest: +SKIP
        >>> len(meta['classes']), len(meta['novel_classes'])  # doctest: +SKIP
        (866, 337)
    """

    def __init__(self, *args, class_split: str = 'all', **kwargs) -> None:
        if class_split not in ('base', 'all'):
            raise ValueError(
                f"class_split must be 'base' or 'all', got {class_split!r}.")
        self.class_split = class_split
        self._split_done = False
        super().__init__(*args, **kwargs)

    def load_data_list(self) -> List[dict]:
        self._split_done = False
        data_list = super().load_data_list()
        if not self._split_done:
            raise ValueError(f'{self.ann_file} has no images.')
        return data_list

    def parse_data_info(
            self, raw_data_info: dict) -> Union[dict, List[dict]]:
        # The parent has just read the file into ``self.lvis`` and set
        # ``cat_ids`` to all its categories; the split needs their
        # frequencies, which only that object holds (reading the 1 GB
        # training file a second time would be the alternative).
        if not self._split_done:
            self._apply_split(self.lvis.cats)
            self._split_done = True
        return super().parse_data_info(raw_data_info)

    def _apply_split(self, cats: dict) -> None:
        base, novel = [], []
        for cat_id in self.cat_ids:
            cat = cats[cat_id]
            freq = cat.get('frequency')
            if freq not in ('f', 'c', 'r'):
                raise ValueError(
                    f'{self.ann_file}: category {cat_id} '
                    f'({cat.get("name")!r}) has frequency {freq!r}, not one '
                    "of 'f', 'c', 'r'.")
            (base if freq in LVIS_BASE_FREQUENCIES else novel).append(cat_id)
        if self.class_split == 'base':
            self.cat_ids = base
            self.cat2label = {cat_id: i for i, cat_id in enumerate(base)}
        self._metainfo.update(
            classes=tuple(cats[i]['name'] for i in self.cat_ids),
            base_classes=tuple(cats[i]['name'] for i in base),
            novel_classes=tuple(cats[i]['name'] for i in novel))
