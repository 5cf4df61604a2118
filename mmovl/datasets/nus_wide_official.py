# Copyright (c) mmovl contributors. All rights reserved.
"""NUS-WIDE's official files: MKT's vocabulary, the image lists and the
tag / concept matrices, read into a compact annotation (see
:mod:`mmovl.datasets.mkt_split`) by :func:`load_nus_wide`."""
import os.path as osp
from itertools import islice
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from mmovl.utils.vocabulary import check_unique_names

from .mkt_split import ProgressFactory, csr_from_dense

# Counts of MKT's NUS-WIDE split; a different count is reported, not refused
# (tiny test fixtures and partial downloads are legitimate).
NUS_WIDE_MKT_COUNTS = dict(seen=925, unseen=81, Train=161789, Test=107859)

NUS_WIDE_FILES = dict(
    concepts=('ConceptsList/Concepts81.txt', 'Concepts81.txt'),
    tags=('NUS_WID_Tags/TagList1k.txt', ),
    image_list=('ImageList/Imagelist.txt', ),
    all_tags=('NUS_WID_Tags/AllTags1k.txt', ),
    all_labels=('Groundtruth/AllLabels', 'AllLabels'),
    split_labels=('Groundtruth/TrainTestLabels', 'TrainTestLabels'),
)
NUS_WIDE_SPLITS = ('Train', 'Test')


def _find(root: str, kind: str, required: bool = True) -> Optional[str]:
    for rel in NUS_WIDE_FILES[kind]:
        if osp.exists(osp.join(root, rel)):
            return osp.join(root, rel)
    if required:
        raise FileNotFoundError(
            f'NUS-WIDE: none of {list(NUS_WIDE_FILES[kind])} under {root}')
    return None


def _read_lines(path: str) -> List[str]:
    """Stripped lines; trailing blank lines ignored, inner ones refused
    (the official files are aligned by line)."""
    with open(path, encoding='utf-8') as f:
        lines = [line.strip() for line in f]
    while lines and not lines[-1]:
        lines.pop()
    if '' in lines:
        raise ValueError(f'{path}: line {lines.index("") + 1} is empty')
    return lines


def _read_name_file(path: str) -> List[str]:
    """The names of a list file (one a line, as :func:`_read_lines`), each
    once."""
    names = _read_lines(path)
    check_unique_names(names, 'names', path)
    return names


def nus_wide_vocabulary(root: str) -> Tuple[List[str], List[str]]:
    """MKT's (and LESA's) NUS-WIDE vocabulary.

    Unseen: the 81 concepts of ``Concepts81.txt`` (human-verified), in file
    order. Seen: the tags of ``NUS_WID_Tags/TagList1k.txt`` that are not
    concepts, in file order (1000 tags, 75 of them concepts: 925).

    Args:
        root (str): The NUS-WIDE folder.

    Returns:
        tuple[list[str], list[str]]: The seen and the unseen label names.
    """
    concepts = _read_name_file(_find(root, 'concepts'))
    tags = _read_name_file(_find(root, 'tags'))
    unseen = set(concepts)
    return [t for t in tags if t not in unseen], concepts


def nus_wide_image_path(line: str) -> str:
    r"""``folder/file`` of an image-list entry.

    ``Imagelist.txt`` holds Windows paths
    (``C:\ImageData\Flickr\actor\0001_2124494179.jpg``), the split lists
    relative ones (``actor\0001_2124494179.jpg``); the images live at
    ``Flickr/<folder>/<file>``.

    Args:
        line (str): A line of an image list.

    Returns:
        str: ``'<folder>/<file>'``.

    Examples:
        >>> nus_wide_image_path('C:\\ImageData\\Flickr\\actor\\0001_21.jpg')
        'actor/0001_21.jpg'
    """
    return '/'.join(line.strip().replace('\\', '/').split('/')[-2:])


_WHITESPACE = np.zeros(256, dtype=bool)
_WHITESPACE[[9, 10, 13, 32]] = True  # tab, newline, carriage return, space


def _read_binary_rows(path: str,
                      num_rows: int,
                      num_cols: int,
                      dest: np.ndarray,
                      out: np.ndarray,
                      columns: Optional[np.ndarray] = None,
                      step: Optional[Callable[[int], None]] = None,
                      chunk: int = 8192) -> None:
    """Parse a text matrix of single-digit 0/1 values, one row a line.

    Row ``r`` of the file goes to ``out[dest[r]]`` (restricted to
    ``columns``) when ``dest[r] >= 0``. Vectorised per chunk of lines: the
    tag files hold 270M values.
    """
    row = 0
    with open(path, 'rb') as f:
        while True:
            lines = list(islice(f, chunk))
            if not lines:
                break
            buf = np.frombuffer(
                b''.join(
                    ln if ln.endswith(b'\n') else ln + b'\n' for ln in lines),
                dtype=np.uint8)
            token = ~_WHITESPACE[buf]
            ends = np.flatnonzero(buf == 10)
            bad = token & (buf != 48) & (buf != 49)
            bad[1:] |= token[1:] & token[:-1]  # a value of two characters
            if bad.any():
                line = row + int(np.searchsorted(ends, np.argmax(bad))) + 1
                raise ValueError(f'{path}, line {line}: values must be 0 or '
                                 '1, separated by white space')
            counts = np.diff(np.concatenate([[0], np.cumsum(token)[ends]]))
            wanted = min(len(lines), num_rows - row)
            if (counts[wanted:] != 0).any():
                raise ValueError(f'{path} has more than {num_rows} rows')
            wrong = np.flatnonzero(counts[:wanted] != num_cols)
            if len(wrong):
                i = wrong[0]
                raise ValueError(f'{path}, line {row + i + 1}: {counts[i]} '
                                 f'values, expected {num_cols}')
            values = buf[token][:wanted * num_cols].reshape(wanted, num_cols)
            target = dest[row:row + wanted]
            keep = target >= 0
            values = values[keep] == 49
            if columns is not None:
                values = values[:, columns]
            out[target[keep]] = values
            row += wanted
            if step is not None:
                step(wanted)
    if row != num_rows:
        raise ValueError(f'{path} has {row} rows, expected {num_rows}')


def load_nus_wide(
        root: str,
        split: str,
        source: str = 'auto',
        progress: Optional[ProgressFactory] = None) -> Dict[str, np.ndarray]:
    """Read one split of NUS-WIDE from its official files.

    The images are those of ``ImageList/<split>Imagelist.txt``, in that
    order. Seen labels (user tags) come from the 1k-tag matrix, unseen
    labels (concepts) from the human ground truth, either

    - ``source='all'`` (as LESA/BiAM built MKT's labels): the rows of
      ``NUS_WID_Tags/AllTags1k.txt`` and ``Groundtruth/AllLabels/
      Labels_<concept>.txt`` that ``ImageList/Imagelist.txt`` assigns to the
      split's images, or
    - ``source='split'``: ``NUS_WID_Tags/<split>_Tags1k.dat`` and
      ``Groundtruth/TrainTestLabels/Labels_<concept>_<split>.txt``, aligned
      with the split's list.

    ``'auto'`` uses ``'all'`` when ``AllTags1k.txt`` exists. Every entry is
    known (1 or 0).

    Args:
        root (str): The NUS-WIDE folder.
        split (str): ``'Train'`` or ``'Test'``.
        source (str): ``'auto'``, ``'all'`` or ``'split'``.
            Defaults to ``'auto'``.
        progress (callable, optional): ``progress(total)`` returns a
            callable advancing a progress bar by n units (lines of the tag
            matrix, then one per concept file). Defaults to None.

    Returns:
        dict[str, np.ndarray]: A compact annotation (see
        :mod:`mmovl.datasets.mkt_split`).
    """
    if split not in NUS_WIDE_SPLITS:
        raise ValueError(f'split must be one of {NUS_WIDE_SPLITS}, got '
                         f'{split!r}')
    if source == 'auto':
        source = 'all' if _find(root, 'all_tags', False) else 'split'
    if source not in ('all', 'split'):
        raise ValueError(f"source must be 'auto', 'all' or 'split', got "
                         f'{source!r}')
    seen, unseen = nus_wide_vocabulary(root)
    tags = _read_name_file(_find(root, 'tags'))
    seen_columns = np.array([tags.index(t) for t in seen], dtype=np.int64)
    list_file = osp.join(root, 'ImageList', f'{split}Imagelist.txt')
    img_paths = [nus_wide_image_path(p) for p in _read_lines(list_file)]
    num_images = len(img_paths)

    if source == 'all':
        all_list = _find(root, 'image_list')
        keys = [nus_wide_image_path(p).lower() for p in _read_lines(all_list)]
        row_of = {}
        for row, key in enumerate(keys):
            if row_of.setdefault(key, row) != row:
                raise ValueError(f'{all_list} lists {key} twice')
        num_rows = len(keys)
        dest = np.full(num_rows, -1, dtype=np.int64)
        for i, path in enumerate(img_paths):
            row = row_of.get(path.lower())
            if row is None:
                raise ValueError(f'{list_file}: {path} is not in {all_list}')
            if dest[row] >= 0:
                raise ValueError(f'{list_file} lists {path} twice')
            dest[row] = i
        tag_file = _find(root, 'all_tags')
        label_dir = _find(root, 'all_labels')
        label_files = [osp.join(label_dir, f'Labels_{c}.txt') for c in unseen]
    else:
        num_rows = num_images
        dest = np.arange(num_images)
        tag_file = osp.join(root, 'NUS_WID_Tags', f'{split}_Tags1k.dat')
        label_dir = _find(root, 'split_labels')
        label_files = [
            osp.join(label_dir, f'Labels_{c}_{split}.txt') for c in unseen
        ]
    for path in [tag_file] + label_files:
        if not osp.isfile(path):
            raise FileNotFoundError(f'NUS-WIDE file not found: {path}')

    step = progress(num_rows + len(label_files)) if progress else None
    labels = np.zeros((num_images, len(seen) + len(unseen)), dtype=bool)
    seen_part = labels[:, :len(seen)]
    _read_binary_rows(tag_file, num_rows, len(tags), dest, seen_part,
                      seen_columns, step)
    for j, path in enumerate(label_files):
        column = labels[:, len(seen) + j:len(seen) + j + 1]
        _read_binary_rows(path, num_rows, 1, dest, column)
        if step is not None:
            step(1)
    indptr, indices = csr_from_dense(labels)
    return dict(
        img_paths=np.array(img_paths, dtype=str),
        seen_classes=np.array(seen, dtype=str),
        unseen_classes=np.array(unseen, dtype=str),
        pos_indptr=indptr,
        pos_indices=indices)
