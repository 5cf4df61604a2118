# Copyright (c) mmovl contributors. All rights reserved.
"""What the MKT-split datasets share (NUS-WIDE in ``nus_wide.py``, Open
Images in ``open_images.py``): :class:`MKTSplitDataset` and the compact
annotation format.

The compact annotation (``.npz``, written by
``tools/dataset_converters/*_mkt_split.py``, read without pickle) holds:

- ``format``: ``'mmovl-mkt-split/1'``; ``dataset``: ``'NUS-WIDE'`` or
  ``'OpenImages'``.
- ``img_paths`` (N,): image paths relative to the image folder
  (``data_prefix``).
- ``seen_classes`` (S,), ``unseen_classes`` (U,): label names. The full
  vocabulary is the seen labels, then the unseen ones (MKT's order).
- ``pos_indptr`` (N + 1,), ``pos_indices``: positives in CSR form, column
  indices into the full vocabulary, sorted within each image.
- ``neg_indptr``, ``neg_indices`` (optional): verified negatives in the same
  form. Without them every label that is not positive is negative; with them
  a label that is neither positive nor negative is unknown.
- Optional extras a dataset may store (``image_ids``, ``seen_mids``,
  ``unseen_mids`` for Open Images).
"""
import gc
import os.path as osp
from contextlib import contextmanager
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
from mmengine.logging import MMLogger
from mmpretrain.datasets import MultiLabelDataset

from mmovl.utils.fileio import atomic_write

from .coco_multi_label import LABEL_SPLITS

ANN_FORMAT = 'mmovl-mkt-split/1'
MISSING_MODES = (None, 'error', 'skip')
# progress(total) returns a callable that advances the bar by n units.
ProgressFactory = Callable[[int], Callable[[int], None]]


def _check_csr(ann: Dict[str, np.ndarray], prefix: str, num_images: int,
               num_classes: int, source: str) -> None:
    indptr = ann[f'{prefix}_indptr']
    indices = ann[f'{prefix}_indices']
    if (indptr.shape != (num_images + 1, ) or indptr[0] != 0
            or indptr[-1] != len(indices) or (np.diff(indptr) < 0).any()):
        raise ValueError(f'{source}: {prefix}_indptr is not a valid index '
                         f'pointer for {num_images} images')
    if len(indices) and (indices.min() < 0 or indices.max() >= num_classes):
        raise ValueError(f'{source}: {prefix}_indices out of range for '
                         f'{num_classes} classes')


def check_annotation(ann: Dict[str, np.ndarray], source: str = '') -> None:
    """Validate a compact annotation (see the module docstring).

    Args:
        ann (dict[str, np.ndarray]): The annotation arrays.
        source (str): Name used in error messages. Defaults to ''.
    """
    for key in ('img_paths', 'seen_classes', 'unseen_classes', 'pos_indptr',
                'pos_indices'):
        if key not in ann:
            raise ValueError(f'{source}: annotation has no "{key}"')
    # Labels are identified by their MIDs where given (Open Images names
    # several MIDs alike), else by their names.
    key = 'mids' if 'seen_mids' in ann else 'classes'
    for name in (f'seen_{key}', f'unseen_{key}'):
        if name not in ann:
            raise ValueError(f'{source}: annotation has no "{name}"')
    seen, unseen = ann[f'seen_{key}'], ann[f'unseen_{key}']
    if (len(seen), len(unseen)) != (len(ann['seen_classes']),
                                    len(ann['unseen_classes'])):
        raise ValueError(f'{source}: as many MIDs as class names needed')
    if set(seen.tolist()) & set(unseen.tolist()):
        raise ValueError(f'{source}: a label is both seen and unseen')
    num_images, num_classes = len(ann['img_paths']), len(seen) + len(unseen)
    _check_csr(ann, 'pos', num_images, num_classes, source)
    if ('neg_indptr' in ann) != ('neg_indices' in ann):
        raise ValueError(f'{source}: neg_indptr and neg_indices go together')
    if 'neg_indptr' in ann:
        _check_csr(ann, 'neg', num_images, num_classes, source)


def save_annotation(path: str, ann: Dict[str, np.ndarray],
                    dataset: str) -> None:
    """Write a compact annotation atomically (compressed ``.npz``).

    The output depends only on the arrays, so converting the same inputs
    twice gives identical bytes.

    Args:
        path (str): The ``.npz`` file.
        ann (dict[str, np.ndarray]): The arrays (see the module docstring).
        dataset (str): ``'NUS-WIDE'`` or ``'OpenImages'``.
    """
    check_annotation(ann, path)
    arrays = dict(format=np.array(ANN_FORMAT), dataset=np.array(dataset))
    for key, value in ann.items():
        value = np.asarray(value)
        if value.dtype == object:
            raise TypeError(f'{key} is an object array; it would need pickle')
        arrays[key] = value

    def write(tmp):
        with open(tmp, 'wb') as f:  # a file: savez would append '.npz'
            np.savez_compressed(f, **arrays)

    atomic_write(path, write)


def load_annotation(path: str, dataset: str) -> Dict[str, np.ndarray]:
    """Read a compact annotation written by :func:`save_annotation`.

    Args:
        path (str): The ``.npz`` file.
        dataset (str): The dataset it must describe.

    Returns:
        dict[str, np.ndarray]: The arrays.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'Annotation file not found: {path}')
    with np.load(path, allow_pickle=False) as npz:
        ann = {key: npz[key] for key in npz.files}
    if str(ann.pop('format', '')) != ANN_FORMAT:
        raise ValueError(f'{path} is not an {ANN_FORMAT} annotation')
    found = str(ann.pop('dataset', ''))
    if found != dataset:
        raise ValueError(f'{path} describes {found!r}, not {dataset!r}')
    check_annotation(ann, path)
    return ann


def csr_from_dense(labels: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """The CSR index pointer and column indices of a boolean matrix.

    Args:
        labels (np.ndarray): Boolean (N, C).

    Returns:
        tuple[np.ndarray, np.ndarray]: ``indptr`` (N + 1,) int64 and
        ``indices`` int32, sorted within each row.
    """
    rows, cols = np.nonzero(labels)
    counts = np.bincount(rows, minlength=labels.shape[0])
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return indptr, cols.astype(np.int32)


@contextmanager
def _gc_paused():
    """Pause the cyclic garbage collector: allocating millions of small
    dicts would run it over and over (it dominates the load time once torch
    is imported), and they hold no cycles."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class MKTSplitDataset(MultiLabelDataset):
    """Multi-label data whose vocabulary is split into seen and unseen
    labels, read from a compact annotation or the dataset's official files.

    Subclasses name the dataset (``DATASET``) and read the official files
    (``_load_official``). Each data info holds ``img_path`` and ``gt_label``
    (positive indices in the current vocabulary); ``gt_score`` (int8, 1
    positive, 0 negative, -1 unknown) is built on access, so the data list
    stays small. When the annotation lists verified negatives, they are kept
    as ``gt_negative`` and every other non-positive entry is unknown.

    The metainfo holds ``classes`` (the vocabulary, in score order),
    ``seen_classes`` and ``unseen_classes`` (those of ``classes`` in each
    group), which :class:`mmovl.evaluation.ZSLMultiLabelMetric` reads.

    Args:
        ann_file (str): A compact annotation (``.npz``) or the official file
            the subclass documents, relative to ``data_root``.
        label_split (str): Vocabulary: ``'all'`` (seen then unseen),
            ``'seen'`` or ``'unseen'``. Defaults to ``'all'``.
        missing (str, optional): What to do with images that are not on
            disk: None does not look (a missing image fails when the
            pipeline loads it), ``'error'`` raises at load time naming the
            first missing file, ``'skip'`` drops them and logs how many.
            Looking means one ``stat`` per image, which takes a while on a
            network file system (270k images for NUS-WIDE, 9M for Open
            Images training). Defaults to None.
        filter_empty (bool): Drop images without a positive label in the
            vocabulary. Defaults to False.
        with_gt_score (bool): Add ``gt_score`` to each data info. Without it
            only ``gt_label`` is given, which means every non-positive label
            is a negative. Defaults to True.
        **kwargs: Passed to :class:`mmpretrain.datasets.MultiLabelDataset`.
    """
    DATASET = ''

    def __init__(self,
                 ann_file: str,
                 label_split: str = 'all',
                 missing: Optional[str] = None,
                 filter_empty: bool = False,
                 with_gt_score: bool = True,
                 **kwargs) -> None:
        if label_split not in LABEL_SPLITS:
            raise ValueError(f'label_split must be one of {LABEL_SPLITS}, '
                             f'got {label_split!r}')
        if missing not in MISSING_MODES:
            raise ValueError(f'missing must be one of {MISSING_MODES}, got '
                             f'{missing!r}')
        self.label_split = label_split
        self.missing = missing
        self.filter_empty = filter_empty
        self.with_gt_score = with_gt_score
        super().__init__(ann_file=ann_file, **kwargs)

    @staticmethod
    def _under_root(path: Optional[str], root: str) -> Optional[str]:
        if path is None or osp.isabs(path) or not root:
            return path
        return osp.join(root, path)

    def _load_official(self) -> Dict[str, np.ndarray]:
        raise NotImplementedError

    def _load_annotation(self) -> Dict[str, np.ndarray]:
        if self.ann_file.endswith('.npz'):
            return load_annotation(self.ann_file, self.DATASET)
        return self._load_official()

    def _class_names(self, ann: Dict[str, np.ndarray]):
        """Names of the seen and unseen labels (subclasses may rename)."""
        return ([str(n) for n in ann['seen_classes']],
                [str(n) for n in ann['unseen_classes']])

    def _extra_metainfo(self, ann: Dict[str, np.ndarray],
                        columns: np.ndarray) -> dict:
        return {}

    def _columns(self, num_seen: int, num_unseen: int) -> np.ndarray:
        """Columns of the full vocabulary that form the current one."""
        if self.label_split == 'seen':
            return np.arange(num_seen)
        if self.label_split == 'unseen':
            return np.arange(num_seen, num_seen + num_unseen)
        return np.arange(num_seen + num_unseen)

    @staticmethod
    def _rows(indptr: np.ndarray, indices: np.ndarray,
              new_index: np.ndarray) -> Tuple[list, list]:
        """Re-index a CSR matrix into the current vocabulary, as lists (fast
        to slice per image)."""
        mapped = new_index[indices]
        keep = mapped >= 0
        kept_before = np.concatenate([[0], np.cumsum(keep)])
        return kept_before[indptr].tolist(), mapped[keep].tolist()

    def load_data_list(self) -> List[dict]:
        ann = self._load_annotation()
        seen, unseen = self._class_names(ann)
        names = seen + unseen
        columns = self._columns(len(seen), len(unseen))
        new_index = np.full(len(names), -1, dtype=np.int64)
        new_index[columns] = np.arange(len(columns))
        self._metainfo.update(
            classes=tuple(names[c] for c in columns),
            seen_classes=tuple(names[c] for c in columns if c < len(seen)),
            unseen_classes=tuple(names[c] for c in columns if c >= len(seen)),
            **self._extra_metainfo(ann, columns))

        pos_ptr, pos = self._rows(ann['pos_indptr'], ann['pos_indices'],
                                  new_index)
        has_neg = 'neg_indptr' in ann
        if has_neg:
            neg_ptr, neg = self._rows(ann['neg_indptr'], ann['neg_indices'],
                                      new_index)
        # joined by hand: osp.join is the slowest step for 9M images
        img_prefix = osp.join(self.data_prefix.get('img_path', ''), '')
        image_ids = ann['image_ids'].tolist() if 'image_ids' in ann else None

        data_list, dropped = [], 0
        with _gc_paused():
            for i, path in enumerate(ann['img_paths'].tolist()):
                gt = pos[pos_ptr[i]:pos_ptr[i + 1]]
                if self.filter_empty and not gt:
                    dropped += 1
                    continue
                info = dict(img_path=img_prefix + path, gt_label=gt)
                if has_neg:
                    info['gt_negative'] = neg[neg_ptr[i]:neg_ptr[i + 1]]
                if image_ids is not None:
                    info['img_id'] = image_ids[i]
                data_list.append(info)
        logger = MMLogger.get_current_instance()
        if dropped:
            logger.info(f'{self.ann_file}: dropped {dropped} images without '
                        f'a label in the {self.label_split} vocabulary '
                        '(filter_empty=True)')
        if self.missing is not None:
            data_list = self._check_missing(data_list, logger)
        return data_list

    def _check_missing(self, data_list: List[dict],
                       logger: MMLogger) -> List[dict]:
        found = [info for info in data_list if osp.isfile(info['img_path'])]
        num_missing = len(data_list) - len(found)
        if not num_missing:
            return data_list
        first = next(info['img_path'] for info in data_list
                     if not osp.isfile(info['img_path']))
        if self.missing == 'error':
            raise FileNotFoundError(
                f'{num_missing} of {len(data_list)} images of '
                f'{self.ann_file} are missing, the first: {first} (pass '
                "missing='skip' to leave them out)")
        logger.warning(f'{self.ann_file}: skipped {num_missing} of '
                       f'{len(data_list)} images that are missing (the '
                       f"first: {first}; missing='skip')")
        return found

    def get_data_info(self, idx: int) -> dict:
        """The data info of an image, with ``gt_score`` when enabled.

        Args:
            idx (int): Index of the image.

        Returns:
            dict: ``img_path``, ``gt_label`` and, when enabled, ``gt_score``
            (int8, 1 positive, 0 negative, -1 unknown).
        """
        info = super().get_data_info(idx)
        if self.with_gt_score:
            num_classes = len(self._metainfo['classes'])
            if 'gt_negative' in info:
                score = np.full(num_classes, -1, dtype=np.int8)
                score[info['gt_negative']] = 0
            else:
                score = np.zeros(num_classes, dtype=np.int8)
            score[info['gt_label']] = 1
            info['gt_score'] = score
        return info
