# Copyright (c) mmovl contributors. All rights reserved.
"""Open Images image-level labels with MKT's open-vocabulary split."""
import csv
import os.path as osp
from array import array
from collections import Counter
from typing import Dict, List, NamedTuple, Optional, Sequence

import numpy as np
from mmengine.logging import MMLogger
from mmpretrain.registry import DATASETS

from mmovl.utils.vocabulary import check_unique_names

from .mkt_split import MKTSplitDataset, ProgressFactory

# Counts of MKT's (and LESA's) Open Images v4 split; others are reported,
# not refused.
OPEN_IMAGES_MKT_COUNTS = dict(seen=7186, unseen=400)


def _csv_rows(path: str):
    """Non-empty CSV rows with their line numbers, minus a ``LabelName``
    header."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'File not found: {path}')
    with open(path, encoding='utf-8', newline='') as f:
        for line, row in enumerate(csv.reader(f), 1):
            if not row or not ''.join(row).strip():
                continue
            if line == 1 and row[0].strip() == 'LabelName':
                continue
            yield line, [field.strip() for field in row]


def read_class_descriptions(path: str) -> Dict[str, str]:
    """Display names of the labels.

    Reads ``class-descriptions.csv`` (v4: ``MID,DisplayName`` rows, no
    header) or ``oidv6-class-descriptions.csv`` (header
    ``LabelName,DisplayName``). Names may be quoted and hold commas.

    Args:
        path (str): The CSV file.

    Returns:
        dict[str, str]: Display name of each MID (e.g. ``'/m/015p6'`` ->
        ``'Bird'``).
    """
    names = {}
    for line, row in _csv_rows(path):
        if len(row) < 2:
            raise ValueError(f'{path}, line {line}: expected MID,DisplayName')
        if row[0] in names:
            raise ValueError(f'{path}, line {line}: {row[0]} is described '
                             'twice')
        names[row[0]] = row[1]
    return names


def read_label_list(path: str) -> List[str]:
    """MIDs of a label list, one a line.

    Accepts the official ``classes-trainable.txt`` (a MID a line) and the
    CSV files the converter writes (``LabelName,DisplayName,...`` with a
    header): the first field of each row is the MID.

    Args:
        path (str): The list.

    Returns:
        list[str]: The MIDs, in file order.
    """
    mids = [row[0] for _, row in _csv_rows(path)]
    check_unique_names(mids, 'labels', path)
    return mids


class ImageLabels(NamedTuple):
    """The rows of an image-level label file, as integer codes.

    Attributes:
        image_ids (list[str]): Image IDs, in order of first appearance.
        mids (list[str]): Label MIDs, in order of first appearance.
        image (np.ndarray): Per row, index into ``image_ids`` (int32).
        label (np.ndarray): Per row, index into ``mids`` (int32).
        positive (np.ndarray): Per row, Confidence 1 (bool).
    """
    image_ids: List[str]
    mids: List[str]
    image: np.ndarray
    label: np.ndarray
    positive: np.ndarray


def read_image_labels(path: str,
                      progress: Optional[ProgressFactory] = None
                      ) -> ImageLabels:
    """Read a human-verified image-level label file.

    The file (``{train,validation,test}-annotations-human-imagelabels.csv``,
    v4; ``oidv6-train-annotations-human-imagelabels.csv`` and later) has a
    header naming ``ImageID``, ``Source``, ``LabelName`` and ``Confidence``
    and a row per verified (image, label): Confidence 1 means the label is
    present, 0 that raters verified it absent. Labels without a row are
    unknown. Machine-generated files (fractional confidences) are refused.

    Args:
        path (str): The CSV file.
        progress (callable, optional): ``progress(total)`` returns a
            callable advancing a progress bar by n bytes. Defaults to None.

    Returns:
        ImageLabels: The rows.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'Label file not found: {path}')
    image_index: Dict[str, int] = {}
    label_index: Dict[str, int] = {}
    images, labels, positive = array('i'), array('i'), array('b')
    step = progress(osp.getsize(path)) if progress else None
    with open(path, 'rb') as f:
        first = f.readline()
        header = [h.strip() for h in first.decode('utf-8').split(',')]
        try:
            col_image, col_label, col_conf = (
                header.index(name)
                for name in ('ImageID', 'LabelName', 'Confidence'))
        except ValueError:
            raise ValueError(f'{path}: the header must name ImageID, '
                             f'LabelName and Confidence, got {header}')
        pending = len(first)
        for line, raw in enumerate(f, 2):
            pending += len(raw)
            text = raw.decode('utf-8').strip()
            if not text:
                continue
            # IDs, MIDs and sources hold no commas; quotes would need csv.
            fields = (
                text.split(',') if '"' not in text else next(
                    csv.reader([text])))
            if len(fields) != len(header):
                raise ValueError(f'{path}, line {line}: {len(fields)} '
                                 f'fields, expected {len(header)}')
            conf = fields[col_conf].strip()
            if conf not in ('0', '1'):
                try:
                    value = float(conf)
                except ValueError:
                    value = None
                if value not in (0.0, 1.0):
                    raise ValueError(
                        f'{path}, line {line}: Confidence {conf!r}; '
                        'human-verified labels are 1 (present) or 0 '
                        '(verified absent), machine-generated label files '
                        'are not supported')
                conf = '1' if value == 1.0 else '0'
            images.append(
                image_index.setdefault(fields[col_image].strip(),
                                       len(image_index)))
            labels.append(
                label_index.setdefault(fields[col_label].strip(),
                                       len(label_index)))
            positive.append(conf == '1')
            if step is not None and pending >= 1 << 20:
                step(pending)
                pending = 0
    if step is not None and pending:
        step(pending)
    return ImageLabels(
        list(image_index), list(label_index), np.array(images, dtype=np.int32),
        np.array(labels, dtype=np.int32), np.array(positive, dtype=bool))


def count_positive_images(labels: ImageLabels) -> Dict[str, int]:
    """Number of distinct images on which each label is verified present.

    Args:
        labels (ImageLabels): The rows of a label file.

    Returns:
        dict[str, int]: Count per MID (labels without a positive: 0).
    """
    pairs = np.unique(labels.image[labels.positive].astype(np.int64) *
                      len(labels.mids) + labels.label[labels.positive])
    counts = np.bincount(
        pairs % max(len(labels.mids), 1), minlength=len(labels.mids))
    return dict(zip(labels.mids, counts.tolist()))


def _csr(keys: np.ndarray, num_images: int, num_classes: int):
    counts = np.bincount(keys // num_classes, minlength=num_images)
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return indptr, (keys % num_classes).astype(np.int32)


def build_open_images_annotation(
        labels: ImageLabels,
        seen_mids: Sequence[str],
        unseen_mids: Sequence[str],
        names: Dict[str, str],
        img_suffix: str = '.jpg') -> Dict[str, np.ndarray]:
    """A compact annotation (see :mod:`mmovl.datasets.mkt_split`) of the
    labelled images over the seen + unseen vocabulary.

    Every image of the label file is kept, also one whose labels all lie
    outside the vocabulary (MKT/BiAM evaluate such test images too).
    Verified negatives are kept; a pair listed as both present and absent
    counts as present.

    Args:
        labels (ImageLabels): The rows of a label file.
        seen_mids (Sequence[str]): MIDs of the seen labels.
        unseen_mids (Sequence[str]): MIDs of the unseen labels.
        names (dict[str, str]): Display names (class descriptions).
        img_suffix (str): Appended to an image ID to name its file.
            Defaults to ``'.jpg'``.

    Returns:
        dict[str, np.ndarray]: The annotation, with ``image_ids``,
        ``seen_mids`` and ``unseen_mids``.
    """
    vocab = list(seen_mids) + list(unseen_mids)
    both = set(seen_mids) & set(unseen_mids)
    if both:
        raise ValueError(f'labels both seen and unseen: {sorted(both)[:5]}')
    unnamed = [m for m in vocab if m not in names]
    if unnamed:
        raise ValueError(f'{len(unnamed)} labels have no class description, '
                         f'e.g. {unnamed[:5]}')
    column = np.full(len(labels.mids) + 1, -1, dtype=np.int64)
    position = {mid: i for i, mid in enumerate(labels.mids)}
    for j, mid in enumerate(vocab):
        if mid in position:
            column[position[mid]] = j
    mapped = column[labels.label]
    keep = mapped >= 0
    num_images, num_classes = len(labels.image_ids), max(len(vocab), 1)
    keys = labels.image[keep].astype(np.int64) * num_classes + mapped[keep]
    present = labels.positive[keep]
    pos_keys = np.unique(keys[present])
    neg_keys = np.setdiff1d(keys[~present], pos_keys)
    pos_indptr, pos_indices = _csr(pos_keys, num_images, num_classes)
    neg_indptr, neg_indices = _csr(neg_keys, num_images, num_classes)
    return dict(
        img_paths=np.array([i + img_suffix for i in labels.image_ids],
                           dtype=str),
        image_ids=np.array(labels.image_ids, dtype=str),
        seen_classes=np.array([names[m] for m in seen_mids], dtype=str),
        unseen_classes=np.array([names[m] for m in unseen_mids], dtype=str),
        seen_mids=np.array(list(seen_mids), dtype=str),
        unseen_mids=np.array(list(unseen_mids), dtype=str),
        pos_indptr=pos_indptr,
        pos_indices=pos_indices,
        neg_indptr=neg_indptr,
        neg_indices=neg_indices)


def unique_display_names(names: Sequence[str],
                         mids: Sequence[str]) -> List[str]:
    """Display names with the MID appended where a name is shared.

    Open Images describes different MIDs with the same name (``'Organ'``
    twice, for instance); the evaluator finds labels by name, so the
    vocabulary's names must be unique.

    Args:
        names (Sequence[str]): Display names.
        mids (Sequence[str]): Their MIDs.

    Returns:
        list[str]: ``'Organ (/m/013y0j)'`` for a shared name, the name
        itself otherwise.

    Examples:
        >>> unique_display_names(['Organ', 'Cat', 'Organ'],
        ...                      ['/m/013y0j', '/m/01yrx', '/m/013y1f'])
        ['Organ (/m/013y0j)', 'Cat', 'Organ (/m/013y1f)']
    """
    counts = Counter(names)
    return [f'{n} ({m})' if counts[n] > 1 else n for n, m in zip(names, mids)]


@DATASETS.register_module()
class OpenImagesMultiLabelDataset(MKTSplitDataset):
    """Open Images image-level labels for open-vocabulary multi-label
    classification, with MKT's split.

    ``gt_score`` holds 1 for a label verified present (Confidence 1), 0 for
    one verified absent (Confidence 0) and -1 for a label nobody verified
    on that image (unknown: left out of AP by
    :class:`mmovl.evaluation.ZSLMultiLabelMetric`; ignored by a rank loss
    that treats -1 as "ignore"). ``gt_label`` lists the positives.

    The vocabulary is the seen labels (file order) then the unseen ones,
    named by their display names (a name shared by several MIDs gets the MID
    appended, see :func:`unique_display_names`); ``metainfo['class_mids']``
    gives the MIDs. MKT's split (v4): 7,186 seen labels, 400 unseen (see
    ``tools/dataset_converters/open_images_mkt_split.py``).

    ``ann_file`` is either

    - a compact annotation (``*.npz``) from the converter, which holds the
      vocabulary (fast; the file arguments below must then be None), or
    - an official ``*-annotations-human-imagelabels.csv``, read with
      ``class_descriptions``, ``seen_file`` and ``unseen_file`` (parsing
      the 9M-image training file takes minutes: convert it once).

    Images: ``<data_root>/<data_prefix>/<ImageID><img_suffix>``.

    Args:
        ann_file (str): The annotation, relative to ``data_root``.
        label_split (str): ``'all'``, ``'seen'`` or ``'unseen'``.
            Defaults to ``'all'``.
        class_descriptions (str, optional): ``class-descriptions.csv`` or
            ``oidv6-class-descriptions.csv``, relative to ``data_root``.
            Defaults to None.
        seen_file (str, optional): Seen label list (e.g. v4's
            ``classes-trainable.txt`` or the converter's
            ``seen_labels.csv``). Defaults to None.
        unseen_file (str, optional): Unseen label list. Defaults to None.
        img_suffix (str): Appended to an image ID to name its file (official
            files only; the converter stores file names). Defaults to
            ``'.jpg'``.
        **kwargs: ``missing``, ``filter_empty``, ``with_gt_score`` (see
            :class:`mmovl.datasets.mkt_split.MKTSplitDataset`) and the
            arguments of :class:`mmpretrain.datasets.MultiLabelDataset`.

    Examples:
        >>> from mmovl.datasets.open_images import (
        ...     OpenImagesMultiLabelDataset)
        >>> test_set = OpenImagesMultiLabelDataset(  # doctest: +SKIP
        ...     data_root='data/openimages',
        ...     ann_file='annotations/open_images_mkt_test.npz',
        ...     data_prefix='test', label_split='unseen')
        >>> len(test_set.metainfo['classes'])  # doctest: +SKIP
        400
    """
    DATASET = 'OpenImages'

    def __init__(self,
                 ann_file: str,
                 label_split: str = 'all',
                 class_descriptions: Optional[str] = None,
                 seen_file: Optional[str] = None,
                 unseen_file: Optional[str] = None,
                 img_suffix: str = '.jpg',
                 data_root: str = '',
                 **kwargs) -> None:
        files = dict(
            class_descriptions=class_descriptions,
            seen_file=seen_file,
            unseen_file=unseen_file)
        given = [k for k, v in files.items() if v is not None]
        if ann_file.endswith('.npz') and given:
            raise ValueError(f'{ann_file} holds its vocabulary; do not pass '
                             f'{given}')
        if not ann_file.endswith('.npz') and len(given) < len(files):
            raise ValueError(
                'reading an official label CSV needs class_descriptions, '
                'seen_file and unseen_file')
        for key, path in files.items():
            setattr(self, key, self._under_root(path, data_root))
        self.img_suffix = img_suffix
        super().__init__(
            ann_file=ann_file,
            label_split=label_split,
            data_root=data_root,
            **kwargs)

    def _load_official(self) -> Dict[str, np.ndarray]:
        names = read_class_descriptions(self.class_descriptions)
        seen = read_label_list(self.seen_file)
        unseen = read_label_list(self.unseen_file)
        labels = read_image_labels(self.ann_file)
        return build_open_images_annotation(labels, seen, unseen, names,
                                            self.img_suffix)

    def _class_names(self, ann: Dict[str, np.ndarray]):
        if 'seen_mids' not in ann:
            raise ValueError(f'{self.ann_file} has no label MIDs; convert '
                             'it with open_images_mkt_split.py')
        mids = ann['seen_mids'].tolist() + ann['unseen_mids'].tolist()
        raw = ann['seen_classes'].tolist() + ann['unseen_classes'].tolist()
        names = unique_display_names(raw, mids)
        renamed = sum(a != b for a, b in zip(raw, names))
        if renamed:
            MMLogger.get_current_instance().info(
                f'{self.ann_file}: {renamed} labels share a display name; '
                'their MIDs were appended to tell them apart')
        num_seen = len(ann['seen_mids'])
        return names[:num_seen], names[num_seen:]

    def _extra_metainfo(self, ann: Dict[str, np.ndarray],
                        columns: np.ndarray) -> dict:
        mids = ann['seen_mids'].tolist() + ann['unseen_mids'].tolist()
        return dict(class_mids=tuple(mids[c] for c in columns))
