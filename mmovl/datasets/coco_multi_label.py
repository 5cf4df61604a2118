# Copyright (c) mmovl contributors. All rights reserved.
import os.path as osp
from collections import defaultdict
from typing import List, Optional, Sequence, Tuple

from mmengine.logging import MMLogger
from mmpretrain.datasets import MultiLabelDataset
from mmpretrain.registry import DATASETS

from ..utils import load_json
from ..utils.vocabulary import check_unique_names

LABEL_SPLITS = ('all', 'seen', 'unseen')


def read_label_file(path: str) -> Tuple[str, ...]:
    """Read label names, one a line (blank lines ignored).

    Args:
        path (str): The text file.

    Returns:
        tuple[str]: The names, in file order.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'Label file not found: {path}')
    try:
        # utf-8-sig: a byte-order mark (Windows editors) is not a name
        with open(path, encoding='utf-8-sig') as f:
            names = tuple(line.strip() for line in f if line.strip())
    except UnicodeDecodeError as e:
        raise ValueError(f'{path} is not UTF-8 text ({e}); save the label '
                         'file as UTF-8') from None
    check_unique_names(names, 'label names', path)
    return names


def _load_coco(path: str) -> dict:
    """A COCO instances file, checked: unique category and image ids,
    and every annotation's image and category among them (a stray one
    would change the labels, and so the metrics, silently)."""
    ann = load_json(path)
    if not isinstance(ann, dict):
        raise ValueError(f'{path} is not a COCO instances file: the top '
                         'level is not an object')
    for key in ('images', 'annotations', 'categories'):
        if key not in ann:
            raise ValueError(
                f'{path} is not a COCO instances file: no "{key}" field')
    for key, what in (('images', 'image'), ('categories', 'category')):
        seen = set()
        for entry in ann[key]:
            if entry['id'] in seen:
                raise ValueError(f'{path}: {what} id {entry["id"]!r} is '
                                 f'listed twice in "{key}"')
            seen.add(entry['id'])
    image_ids = {img['id'] for img in ann['images']}
    cat_ids = {c['id'] for c in ann['categories']}
    for i, a in enumerate(ann['annotations']):
        if a.get('image_id') not in image_ids:
            raise ValueError(f'{path}: annotation {i} (id {a.get("id")!r}) '
                             f'is for image {a.get("image_id")!r}, which is '
                             'not in "images"')
        if a.get('category_id') not in cat_ids:
            raise ValueError(f'{path}: annotation {i} (id {a.get("id")!r}) '
                             f'has category_id {a.get("category_id")!r}, '
                             'which is not in "categories"')
    return ann


def _images_per_category(ann: dict) -> dict:
    images = defaultdict(set)
    for a in ann['annotations']:
        images[a['category_id']].add(a['image_id'])
    return images


@DATASETS.register_module()
class CocoMultiLabelDataset(MultiLabelDataset):
    """Multi-label classification read from a COCO instances file.

    An image's labels are the categories of its boxes. The vocabulary can be
    restricted to the *seen* or *unseen* labels of an open-vocabulary split,
    given as a text file of unseen label names, so one annotation file serves
    zero-shot training (seen labels), ZSL testing (unseen labels) and GZSL
    testing (all labels). COCO, COCO-LT subsets and the toy world share this
    format.

    The dataset's metainfo carries what the evaluators need:
    ``classes`` (the vocabulary, in score order), ``seen_classes`` and
    ``unseen_classes`` (those of ``classes`` in each group) and, when
    ``frequency_ann_file`` is given, ``class_frequencies`` (training images
    per class, for head / medium / tail groups of long-tailed data).

    Args:
        ann_file (str): COCO instances json, relative to ``data_root``.
        unseen_file (str, optional): Text file of unseen label names, one a
            line, relative to ``data_root``. Defaults to None (all seen).
        label_split (str): Vocabulary: ``'all'``, ``'seen'`` or ``'unseen'``.
            Defaults to ``'all'``.
        frequency_ann_file (str, optional): Instances file whose per-class
            image counts become ``class_frequencies`` (the training file of
            a long-tailed set, so that its test set can be reported by head /
            medium / tail groups). Defaults to None (no frequencies).
        filter_empty (bool): Drop images with no label in the vocabulary.
            Defaults to False.
        **kwargs: Passed to :class:`mmpretrain.datasets.MultiLabelDataset`
            (``data_root``, ``data_prefix``, ``pipeline``, ``test_mode``...).

    Examples:
        >>> from mmovl.datasets import CocoMultiLabelDataset
        >>> ds = CocoMultiLabelDataset(  # doctest: +SKIP
        ...     data_root='data/toy_world',
        ...     ann_file='annotations/instances_val.json',
        ...     unseen_file='annotations/unseen_labels.txt',
        ...     label_split='unseen', data_prefix='val')
    """

    def __init__(self,
                 ann_file: str,
                 unseen_file: Optional[str] = None,
                 label_split: str = 'all',
                 frequency_ann_file: Optional[str] = None,
                 filter_empty: bool = False,
                 data_root: str = '',
                 **kwargs) -> None:
        if label_split not in LABEL_SPLITS:
            raise ValueError(f'label_split must be one of {LABEL_SPLITS}, '
                             f'got {label_split!r}')
        if label_split != 'all' and unseen_file is None:
            raise ValueError(
                f'label_split={label_split!r} needs an unseen_file')
        self.unseen_file = self._under_root(unseen_file, data_root)
        self.frequency_ann_file = self._under_root(frequency_ann_file,
                                                   data_root)
        self.label_split = label_split
        self.filter_empty = filter_empty
        super().__init__(ann_file=ann_file, data_root=data_root, **kwargs)

    @staticmethod
    def _under_root(path: Optional[str], root: str) -> Optional[str]:
        if path is None or osp.isabs(path) or not root:
            return path
        return osp.join(root, path)

    def _vocabulary(self, names: Sequence[str]) -> List[str]:
        if self.unseen_file is None:
            unseen: Tuple[str, ...] = ()
        else:
            unseen = read_label_file(self.unseen_file)
            unknown = sorted(set(unseen) - set(names))
            if unknown:
                raise ValueError(
                    f'{self.unseen_file} names labels that are not '
                    f'categories of {self.ann_file}: {unknown}')
        self._unseen = set(unseen)
        if self.label_split == 'seen':
            return [n for n in names if n not in self._unseen]
        if self.label_split == 'unseen':
            return [n for n in names if n in self._unseen]
        return list(names)

    def _frequencies(self, index: dict) -> List[int]:
        freq_ann = _load_coco(self.frequency_ann_file)
        names = {c['id']: c['name'] for c in freq_ann['categories']}
        frequencies = [0] * len(index)
        for cat_id, image_ids in _images_per_category(freq_ann).items():
            if names.get(cat_id) in index:
                frequencies[index[names[cat_id]]] = len(image_ids)
        return frequencies

    def load_data_list(self) -> List[dict]:
        ann = _load_coco(self.ann_file)
        cats = sorted(ann['categories'], key=lambda c: c['id'])
        names = [c['name'] for c in cats]
        vocab = self._vocabulary(names)
        index = {name: i for i, name in enumerate(vocab)}
        cat_to_label = {
            c['id']: index[c['name']]
            for c in cats if c['name'] in index
        }

        labels = defaultdict(set)
        for a in ann['annotations']:
            if a['category_id'] in cat_to_label:
                labels[a['image_id']].add(cat_to_label[a['category_id']])

        self._metainfo.update(
            classes=tuple(vocab),
            seen_classes=tuple(n for n in vocab if n not in self._unseen),
            unseen_classes=tuple(n for n in vocab if n in self._unseen))
        if self.frequency_ann_file is not None:
            self._metainfo['class_frequencies'] = self._frequencies(index)

        img_prefix = self.data_prefix.get('img_path', '')
        data_list, dropped = [], 0
        for img in ann['images']:
            gt = sorted(labels.get(img['id'], ()))
            if self.filter_empty and not gt:
                dropped += 1
                continue
            data_list.append(
                dict(img_path=osp.join(img_prefix, img['file_name']),
                     img_id=img['id'], gt_label=gt))
        if dropped:
            MMLogger.get_current_instance().info(
                f'{self.ann_file}: dropped {dropped} images without a label '
                f'in the {self.label_split} vocabulary (filter_empty=True)')
        return data_list
