# Copyright (c) mmovl contributors. All rights reserved.
"""Miniature classification data sets in their official formats.

Each ``make_*`` function writes, under one folder, what a real config's
``data_root`` holds once the data set is downloaded and prepared as the
config says: the files as the data set distributes them, synthetic
photographs at the sizes of its real images (see :mod:`.images`) and, where
the config reads a converted annotation, the output of the project's own
converter run on those files. Point the config's ``data_root`` at the folder
and nothing else needs to change.

- :func:`make_nus_wide`: NUS-WIDE's official tree (concept and tag lists,
  image lists, tag matrices, ground-truth label files, ``Flickr/`` images),
  converted by ``tools/dataset_converters/nus_wide_mkt_split.py``.
- :func:`make_open_images`: Open Images v4's human-verified image-level
  label CSVs, ``class-descriptions.csv`` and ``classes-trainable.txt``,
  ``train/`` and ``test/`` images, converted by
  ``tools/dataset_converters/open_images_mkt_split.py``.
- :func:`make_imagenet`: ImageNet-1k as mmpretrain's ``ImageNet`` reads it
  (``train/<wnid>/<wnid>_<n>.JPEG``, a flat ``val/``, ``meta/train.txt``
  and ``meta/val.txt``), a few classes present.

Every file is written atomically, and the same seed gives the same files.
Each function returns a summary: counts, the files written (relative to the
root), the label names and, per image, the labels it was given, so that a
test can check what a data set loads against what was meant rather than
against the converter's output.
"""
import colorsys
import contextlib
import importlib.util
import io
import os.path as osp
from typing import List, Sequence, Tuple

import numpy as np

from mmovl.utils import atomic_write_lines, atomic_write_text

from .images import random_boxes, synth_image, write_jpeg

__all__ = [
    'make_nus_wide', 'make_open_images', 'make_imagenet', 'NUS_WIDE_CONCEPTS',
    'NUS_WIDE_TAGS', 'OPEN_IMAGES_CLASSES', 'IMAGENET_WNIDS'
]

# --------------------------------------------------------------------------
# Shared helpers.
# --------------------------------------------------------------------------
_PACKAGE_DIR = osp.dirname(osp.dirname(osp.abspath(__file__)))


def _converter(name: str):
    """Import ``tools/dataset_converters/<name>.py`` (of the source tree, or
    the copy in ``mmovl/.mim/tools`` an installed package ships)."""
    candidates = [
        osp.join(
            osp.dirname(_PACKAGE_DIR), 'tools', 'dataset_converters',
            f'{name}.py'),
        osp.join(_PACKAGE_DIR, '.mim', 'tools', 'dataset_converters',
                 f'{name}.py'),
    ]
    for path in candidates:
        if osp.isfile(path):
            spec = importlib.util.spec_from_file_location(
                f'_mmovl_converter_{name}', path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            return module
    raise FileNotFoundError(f'converter {name}.py not found at {candidates}')


def _run_converter(name: str, argv: Sequence[str]) -> str:
    """Run a converter's ``main(argv)`` in this process; return what it
    printed."""
    module = _converter(name)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        module.main(list(argv))
    return out.getvalue()


def _palette(num: int) -> List[Tuple[int, int, int]]:
    """``num`` well-separated BGR colours, one per label."""
    colours = []
    for i in range(num):
        r, g, b = colorsys.hsv_to_rgb((i * 0.618034) % 1.0, 0.85, 0.9)
        colours.append((int(b * 255), int(g * 255), int(r * 255)))
    return colours


def _photo_size(rng: np.random.Generator,
                long_side: int,
                short_min: int,
                short_max: int,
                portrait: float = 0.25) -> Tuple[int, int]:
    """``(width, height)`` of a photograph whose long side is
    ``long_side``, upright with probability ``portrait``."""
    short = int(rng.integers(short_min, short_max + 1))
    if rng.random() < portrait:
        return short, long_side
    return long_side, short


def _write_photo(path: str, rng: np.random.Generator, size: Tuple[int, int],
                 label_ids: Sequence[int],
                 palette: Sequence[Tuple[int, int, int]]) -> None:
    """A JPEG with a rectangle in each label's colour."""
    width, height = size
    boxes = random_boxes(rng, width, height, len(label_ids))
    write_jpeg(
        path,
        synth_image(rng, width, height, boxes,
                    [palette[i] for i in label_ids]))


def _cover(rng: np.random.Generator, label_sets: List[set],
           labels: Sequence) -> None:
    """Give each of ``labels`` missing from every set to one set (drawn at
    random), so that each label occurs at least once."""
    present = set().union(*label_sets) if label_sets else set()
    for label in labels:
        if label not in present:
            label_sets[int(rng.integers(len(label_sets)))].add(label)


# --------------------------------------------------------------------------
# NUS-WIDE.
# --------------------------------------------------------------------------
# A few of the 81 concepts, in Concepts81.txt's (alphabetical) order; as in
# the real files, 'computer' and 'whales' are not among the tags.
NUS_WIDE_CONCEPTS = ('animal', 'beach', 'clouds', 'computer', 'flowers', 'sky',
                     'water', 'whales')
# Frequent Flickr tags in TagList1k.txt's (alphabetical) order: six of the
# concepts, and tags that are no concept.
NUS_WIDE_TAGS = ('animal', 'architecture', 'art', 'beach', 'beautiful',
                 'black', 'blue', 'city', 'clouds', 'color', 'flowers',
                 'green', 'landscape', 'light', 'macro', 'nature', 'night',
                 'old', 'outdoor', 'park', 'portrait', 'red', 'sea', 'sky',
                 'summer', 'travel', 'trip', 'urban', 'water', 'white')
# Folders of Flickr/ (the queries the images were crawled with).
_NUS_WIDE_FOLDERS = ('animal', 'beach', 'clouds', 'flowers', 'garden',
                     'harbor', 'lake', 'sky')


def make_nus_wide(root: str,
                  seed: int = 0,
                  num_train: int = 16,
                  num_test: int = 8) -> dict:
    """A miniature NUS-WIDE, converted into MKT's split.

    For ``configs/mkt/mkt_vit_b16_20e_nuswide.py`` (``data_root``
    ``data/nus_wide``). Writes the official files that
    ``tools/dataset_converters/nus_wide_mkt_split.py`` reads, in their
    official forms (CRLF line endings, Windows paths in ``Imagelist.txt``,
    tab-separated 0/1 tag rows):

    - ``ConceptsList/Concepts81.txt`` (:data:`NUS_WIDE_CONCEPTS`, 8 of the
      81) and ``NUS_WID_Tags/TagList1k.txt`` (:data:`NUS_WIDE_TAGS`, 30 of
      the 1,000, six of them concepts);
    - ``ImageList/Imagelist.txt`` (every image), ``TrainImagelist.txt`` and
      ``TestImagelist.txt``;
    - ``NUS_WID_Tags/AllTags1k.txt`` and ``Groundtruth/AllLabels/
      Labels_<concept>.txt`` (rows in ``Imagelist.txt`` order), and the
      per-split ``NUS_WID_Tags/{Train,Test}_Tags1k.dat`` and
      ``Groundtruth/TrainTestLabels/Labels_<concept>_{Train,Test}.txt``;
    - ``Flickr/<folder>/<nnnn>_<flickr id>.jpg``, about 500 x 375;

    then runs the converter, which writes ``annotations/
    nus_wide_mkt_{train,test}.npz``, ``seen_labels.txt`` and
    ``unseen_labels.txt``: 24 seen labels (the tags that are no concept)
    and 8 unseen (the concepts), 32 in all.

    User tags and human concepts differ as they do in the real data: an
    image may carry a concept's tag without the concept, or the concept
    without the tag. Every training image has a seen label; every label is
    positive on some training image (seen labels) and on some test image.

    Args:
        root (str): The folder to write (the config's ``data_root``).
        seed (int): Seed of every random choice. Defaults to 0.
        num_train (int): Training images. Defaults to 16.
        num_test (int): Test images. Defaults to 8.

    Returns:
        dict: ``root``, ``num_train``, ``num_test``, ``concepts``, ``tags``,
        ``seen_classes``, ``unseen_classes``, ``files`` (written, relative
        to ``root``), ``converter_output`` and ``images``: for ``'Train'``
        and ``'Test'``, a dict per image in list order with ``path``
        (``<folder>/<file>`` under ``Flickr``), ``size`` ``(width,
        height)``, ``tags`` and ``concepts`` (sorted names).
    """
    rng = np.random.default_rng(seed)
    concepts, tags = list(NUS_WIDE_CONCEPTS), list(NUS_WIDE_TAGS)
    seen = [t for t in tags if t not in concepts]
    concept_tags = [c for c in concepts if c in tags]
    num_images = num_train + num_test

    # Image names: a running number within each folder and a Flickr id.
    folders = sorted(rng.choice(_NUS_WIDE_FOLDERS, size=num_images).tolist())
    ids = []
    while len(ids) < num_images:
        flickr_id = int(rng.integers(10**9, 10**10))
        if flickr_id not in ids:
            ids.append(flickr_id)
    paths, counter = [], {}
    for folder, flickr_id in zip(folders, ids):
        counter[folder] = counter.get(folder, 0) + 1
        paths.append(f'{folder}/{counter[folder]:04d}_{flickr_id}.jpg')
    is_train = np.zeros(num_images, dtype=bool)
    is_train[rng.permutation(num_images)[:num_train]] = True

    # Labels: human concepts (0-3), then user tags that partly follow them.
    concept_sets, tag_sets = [], []
    for _ in range(num_images):
        got = set(
            rng.choice(concepts, size=int(rng.integers(0, 4)),
                       replace=False).tolist())
        tagged = {c for c in got if c in tags and rng.random() < 0.7}
        if rng.random() < 0.2:  # a concept's tag no rater confirmed
            tagged.add(str(rng.choice(concept_tags)))
        tagged |= set(
            rng.choice(seen, size=int(rng.integers(1, 5)),
                       replace=False).tolist())
        concept_sets.append(got)
        tag_sets.append(tagged)
    train_rows = np.flatnonzero(is_train).tolist()
    test_rows = np.flatnonzero(~is_train).tolist()
    _cover(rng, [tag_sets[r] for r in train_rows], seen)
    _cover(rng, [tag_sets[r] for r in test_rows], tags)
    _cover(rng, [concept_sets[r] for r in test_rows], concepts)

    files = []

    def write(rel, lines):
        atomic_write_lines(osp.join(root, rel), lines, newline='\r\n')
        files.append(rel)

    def tag_row(row):
        return ''.join(f'{int(t in tag_sets[row])}\t' for t in tags)

    write('ConceptsList/Concepts81.txt', concepts)
    write('NUS_WID_Tags/TagList1k.txt', tags)
    write('ImageList/Imagelist.txt',
          ['C:\\ImageData\\Flickr\\' + p.replace('/', '\\') for p in paths])
    write('NUS_WID_Tags/AllTags1k.txt',
          [tag_row(r) for r in range(num_images)])
    for c in concepts:
        write(f'Groundtruth/AllLabels/Labels_{c}.txt',
              [int(c in s) for s in concept_sets])
    for split, rows in (('Train', train_rows), ('Test', test_rows)):
        write(f'ImageList/{split}Imagelist.txt',
              [paths[r].replace('/', '\\') for r in rows])
        write(f'NUS_WID_Tags/{split}_Tags1k.dat', [tag_row(r) for r in rows])
        for c in concepts:
            write(f'Groundtruth/TrainTestLabels/Labels_{c}_{split}.txt',
                  [int(c in concept_sets[r]) for r in rows])

    palette = _palette(len(seen) + len(concepts))
    vocab = {name: i for i, name in enumerate(seen)}
    vocab.update({c: len(seen) + i for i, c in enumerate(concepts)})
    images = {}
    for split, rows in (('Train', train_rows), ('Test', test_rows)):
        images[split] = []
        for r in rows:
            size = _photo_size(rng, 500, 300, 400)
            shown = {t for t in tag_sets[r] if t in seen} | concept_sets[r]
            label_ids = sorted(vocab[name] for name in shown)
            _write_photo(
                osp.join(root, 'Flickr', paths[r]), rng, size, label_ids,
                palette)
            files.append(f'Flickr/{paths[r]}')
            images[split].append(
                dict(
                    path=paths[r],
                    size=size,
                    tags=sorted(tag_sets[r]),
                    concepts=sorted(concept_sets[r])))

    output = _run_converter('nus_wide_mkt_split', [root])
    files += [
        f'annotations/{name}'
        for name in ('nus_wide_mkt_train.npz', 'nus_wide_mkt_test.npz',
                     'seen_labels.txt', 'unseen_labels.txt')
    ]
    return dict(
        root=root,
        num_train=num_train,
        num_test=num_test,
        concepts=concepts,
        tags=tags,
        seen_classes=seen,
        unseen_classes=list(concepts),
        files=files,
        converter_output=output,
        images=images)


# --------------------------------------------------------------------------
# Open Images v4.
# --------------------------------------------------------------------------
# (MID, display name, role). MIDs have the official form but are made up.
# Roles: 'seen' (in classes-trainable.txt), 'unseen' (verified present on
# test images only: the converter makes them the unseen labels), 'other'
# (verified present on training images but not trainable: in no vocabulary,
# as most of v4's 19,995 described classes) and 'unused' (described, never
# labelled). Two MIDs share the display name 'Organ', as in the real file.
# yapf: disable
OPEN_IMAGES_CLASSES = (
    ('/m/0mini01', 'Person', 'seen'),
    ('/m/0mini02', 'Dog', 'seen'),
    ('/m/0mini03', 'Cat', 'seen'),
    ('/m/0mini04', 'Car', 'seen'),
    ('/m/0mini05', 'Tree', 'seen'),
    ('/m/0mini06', 'Flower', 'seen'),
    ('/m/0mini07', 'Building', 'seen'),
    ('/m/0mini08', 'Food', 'seen'),
    ('/m/0mini09', 'Bird', 'seen'),
    ('/m/0mini10', 'Boat', 'seen'),
    ('/m/0mini11', 'Bicycle', 'seen'),
    ('/m/0mini12', 'Organ', 'seen'),
    ('/m/0mini13', 'Zebra', 'unseen'),
    ('/m/0mini14', 'Kite', 'unseen'),
    ('/m/0mini15', 'Lighthouse', 'unseen'),
    ('/m/0mini16', 'Violin', 'unseen'),
    ('/m/0mini17', 'Organ', 'unseen'),
    ('/m/0mini18', 'Snowman', 'unseen'),
    ('/m/0mini19', 'Tableware', 'other'),
    ('/m/0mini20', 'Axolotl', 'other'),
    ('/m/0mini21', 'Aardvark', 'unused'),
    ('/m/0mini22', 'Quill', 'unused'),
)
# yapf: enable
_OI_LABEL_FILES = dict(
    train='train-annotations-human-imagelabels.csv',
    test='test-annotations-human-imagelabels.csv')


def _image_labels_csv(rows: Sequence[Tuple[str, str, str, int]]) -> str:
    """An image-level label file: header and ``ImageID,Source,LabelName,
    Confidence`` rows."""
    return 'ImageID,Source,LabelName,Confidence\n' + ''.join(
        f'{i},{s},{m},{c}\n' for i, s, m, c in rows)


def make_open_images(root: str,
                     seed: int = 0,
                     num_train: int = 24,
                     num_test: int = 12) -> dict:
    """A miniature Open Images v4, converted into MKT's split.

    For ``configs/mkt/mkt_vit_b16_20e_openimages.py`` (``data_root``
    ``data/openimages``). Writes the v4 files the config's preparation
    command reads:

    - ``train-annotations-human-imagelabels.csv`` and
      ``test-annotations-human-imagelabels.csv`` (header ``ImageID,Source,
      LabelName,Confidence``, sorted by ImageID; Confidence 1 verified
      present, 0 verified absent; a label without a row is unknown);
    - ``class-descriptions.csv`` (``MID,DisplayName``, no header) for the
      22 classes of :data:`OPEN_IMAGES_CLASSES`;
    - ``classes-trainable.txt``: the 12 seen MIDs;
    - ``train/<ImageID>.jpg`` and ``test/<ImageID>.jpg``, about 1024 x 768;

    then runs the converter as the config's header says (``--seen-list
    classes-trainable.txt``, no unseen list: the converter picks the labels
    verified present on test images and on no training image, most frequent
    first, ties by MID), which writes ``annotations/
    open_images_mkt_{train,test}.npz``, ``seen_labels.csv`` and
    ``unseen_labels.csv``: 12 seen and 6 unseen labels, 18 in all.

    Each training image has 1-3 seen labels verified present, 1-3 verified
    absent (now and then an unseen label among them) and sometimes an
    out-of-vocabulary label; each test image has 0-2 seen and 0-2 unseen
    positives, 1-3 verified negatives; one test image carries only
    out-of-vocabulary labels (all unknown in the vocabulary). Every seen
    label is positive on a training image, every vocabulary label on a test
    image, and each out-of-vocabulary label on a training image.

    Args:
        root (str): The folder to write (the config's ``data_root``).
        seed (int): Seed of every random choice. Defaults to 0.
        num_train (int): Training images. Defaults to 24.
        num_test (int): Test images (at least 2). Defaults to 12.

    Returns:
        dict: ``root``, ``num_train``, ``num_test``, ``classes`` (the
        ``(mid, name, role)`` triples), ``seen_mids``, ``unseen_mids``
        (the unseen labels in the order the conversion rule gives),
        ``files``, ``converter_output`` and ``images``: for ``'train'`` and
        ``'test'``, a dict per image in file order with ``image_id``,
        ``path`` (under the split's folder), ``size`` ``(width, height)``,
        ``positive`` and ``negative`` (sorted MIDs).
    """
    if num_test < 2:
        raise ValueError('num_test must be at least 2')
    rng = np.random.default_rng(seed)
    by_role = {
        role: [m for m, _, r in OPEN_IMAGES_CLASSES if r == role]
        for role in ('seen', 'unseen', 'other')
    }
    seen, unseen, other = by_role['seen'], by_role['unseen'], by_role['other']
    vocab = seen + unseen

    def draw(pool, low, high, exclude=()):
        pool = [m for m in pool if m not in exclude]
        num = min(int(rng.integers(low, high + 1)), len(pool))
        return set(rng.choice(pool, size=num, replace=False).tolist())

    labels = {}
    for split, num in (('train', num_train), ('test', num_test)):
        ids = set()
        while len(ids) < num:
            ids.add(f'{int(rng.integers(0, 1 << 62)):016x}')
        pos, neg = [], []
        for k in range(num):
            if split == 'train':
                p = draw(seen, 1, 3)
                if rng.random() < 0.3:
                    p |= draw(other, 1, 1)
                n = draw(seen, 1, 3, exclude=p)
                if rng.random() < 0.3:
                    n |= draw(unseen, 1, 1)
            elif k == 0:  # nothing in the vocabulary is known
                p, n = draw(other, 1, 1), draw(other, 0, 1)
                n -= p
            else:
                p = draw(seen, 0, 2) | draw(unseen, 0, 2)
                if not p:
                    p = draw(vocab, 1, 1)
                if rng.random() < 0.2:
                    p |= draw(other, 1, 1)
                n = draw(vocab, 1, 3, exclude=p)
            pos.append(p)
            neg.append(n)
        labels[split] = (sorted(ids), pos, neg)

    # Coverage, without touching the out-of-vocabulary test image (k = 0).
    _cover(rng, labels['train'][1], seen + other)
    _cover(rng, labels['test'][1][1:], vocab)
    for split in labels:
        _, pos, neg = labels[split]
        for p, n in zip(pos, neg):
            n -= p

    # The unseen order the converter's rule gives: test images verified
    # present, most first, ties by MID.
    test_counts = {m: sum(m in p for p in labels['test'][1]) for m in unseen}
    unseen_order = sorted(unseen, key=lambda m: (-test_counts[m], m))

    files = []

    def write(rel, text):
        atomic_write_text(osp.join(root, rel), text)
        files.append(rel)

    write('class-descriptions.csv',
          ''.join(f'{m},{n}\n' for m, n, _ in sorted(OPEN_IMAGES_CLASSES)))
    write('classes-trainable.txt', ''.join(f'{m}\n' for m in seen))
    palette = _palette(len(vocab))
    column = {m: i for i, m in enumerate(vocab)}
    images = {}
    for split, (ids, pos, neg) in labels.items():
        rows = []
        for image_id, p, n in zip(ids, pos, neg):
            source = ('crowdsource-verification' if split == 'test'
                      and rng.random() < 0.3 else 'verification')
            rows += [(image_id, source, m, 1) for m in p]
            rows += [(image_id, source, m, 0) for m in n]
        rows.sort(key=lambda row: (row[0], row[2]))
        write(_OI_LABEL_FILES[split], _image_labels_csv(rows))
        images[split] = []
        for image_id, p, n in zip(ids, pos, neg):
            size = _photo_size(rng, 1024, 576, 800)
            path = f'{image_id}.jpg'
            _write_photo(
                osp.join(root, split, path), rng, size,
                sorted(column[m] for m in p if m in column), palette)
            files.append(f'{split}/{path}')
            images[split].append(
                dict(
                    image_id=image_id,
                    path=path,
                    size=size,
                    positive=sorted(p),
                    negative=sorted(n)))

    out_dir = osp.join(root, 'annotations')
    output = _run_converter('open_images_mkt_split', [
        '--train-csv',
        osp.join(root, _OI_LABEL_FILES['train']), '--test-csv',
        osp.join(root, _OI_LABEL_FILES['test']), '--class-descriptions',
        osp.join(root, 'class-descriptions.csv'), '--seen-list',
        osp.join(root, 'classes-trainable.txt'), '--out-dir', out_dir
    ])
    files += [
        f'annotations/{name}'
        for name in ('open_images_mkt_train.npz', 'open_images_mkt_test.npz',
                     'seen_labels.csv', 'unseen_labels.csv')
    ]
    return dict(
        root=root,
        num_train=num_train,
        num_test=num_test,
        classes=[tuple(c) for c in OPEN_IMAGES_CLASSES],
        seen_mids=seen,
        unseen_mids=unseen_order,
        files=files,
        converter_output=output,
        images=images)


# --------------------------------------------------------------------------
# ImageNet-1k.
# --------------------------------------------------------------------------
# The first 16 of the 1,000 ILSVRC-2012 synsets in sorted order: class k is
# the k-th wnid, so these are classes 0-15 of mmpretrain's ImageNet (tench,
# goldfish, great white shark, ...).
IMAGENET_WNIDS = ('n01440764', 'n01443537', 'n01484850', 'n01491361',
                  'n01494475', 'n01496331', 'n01498041', 'n01514668',
                  'n01514859', 'n01518878', 'n01530575', 'n01531178',
                  'n01532829', 'n01534433', 'n01537544', 'n01558993')


def make_imagenet(root: str,
                  seed: int = 0,
                  num_classes: int = 4,
                  train_per_class: int = 4,
                  val_per_class: int = 2) -> dict:
    """A miniature ImageNet-1k in the layout mmpretrain's ``ImageNet``
    reads.

    For ``configs/unicl/unicl_vit_b16_32e_in1k.py`` (``data_root``
    ``data/imagenet``; ``ImageNet(split='train')`` as UniCL's label source,
    ``ImageNet(split='val')`` for validation). Writes the layout of
    mmpretrain's ImageNet preparation:

    - ``train/<wnid>/<wnid>_<n>.JPEG`` (as ``ILSVRC2012_img_train.tar``
      unpacks) for the first ``num_classes`` synsets of
      :data:`IMAGENET_WNIDS`;
    - ``val/ILSVRC2012_val_<8 digits>.JPEG``, flat and numbered from 1, the
      classes shuffled (as ``ILSVRC2012_img_val.tar`` unpacks);
    - ``meta/train.txt`` (``<wnid>/<file> <class>``) and ``meta/val.txt``
      (``<file> <class>``), the class being the synset's index in sorted
      wnid order (caffe's ``train.txt`` / ``val.txt``);

    images about 500 x 375. No converter is involved.

    ``ImageNet`` with a ``split`` reads ``meta/<split>.txt`` when it exists
    and then takes the labels from it, whatever folders exist; without it,
    it would scan ``<split>/`` and insist on exactly 1,000 class folders.
    Its ``metainfo['classes']`` is always mmpretrain's 1,000 ImageNet names,
    however few classes have images, so the vocabulary of the config is
    1,000 names (999 distinct: ``'crane'`` names classes 134 and 517).
    The classes present are the first ``num_classes``, so their labels stay
    valid if a run narrows the vocabulary to the first ``num_classes``
    names.

    Args:
        root (str): The folder to write (the config's ``data_root``).
        seed (int): Seed of every random choice. Defaults to 0.
        num_classes (int): Classes with images, at most 16. Defaults to 4.
        train_per_class (int): Training images a class. Defaults to 4.
        val_per_class (int): Validation images a class. Defaults to 2.

    Returns:
        dict: ``root``, ``num_train``, ``num_val``, ``wnids``, ``labels``
        (class indices of the synsets present), ``label_names`` (their
        names in mmpretrain's ImageNet metainfo), ``num_classes_metainfo``
        (1000), ``files`` and ``images``: for ``'train'`` and ``'val'``, a
        dict per image in ``meta/<split>.txt`` order with ``path`` (under
        the split's folder), ``size`` ``(width, height)`` and ``label``.
    """
    from mmpretrain.datasets.categories import IMAGENET_CATEGORIES

    if not 1 <= num_classes <= len(IMAGENET_WNIDS):
        raise ValueError(f'num_classes must be in [1, {len(IMAGENET_WNIDS)}]'
                         f', got {num_classes}')
    rng = np.random.default_rng(seed)
    wnids = list(IMAGENET_WNIDS[:num_classes])
    palette = _palette(num_classes)
    files = []

    train = []
    for label, wnid in enumerate(wnids):
        numbers = rng.choice(
            np.arange(1, 16000), size=train_per_class, replace=False)
        train += sorted(
            (f'{wnid}/{wnid}_{n}.JPEG', label) for n in numbers.tolist())
    val_labels = rng.permutation(
        np.repeat(np.arange(num_classes), val_per_class)).tolist()
    val = [(f'ILSVRC2012_val_{i:08d}.JPEG', label)
           for i, label in enumerate(val_labels, 1)]

    images = {}
    for split, samples in (('train', train), ('val', val)):
        rel = f'meta/{split}.txt'
        atomic_write_lines(
            osp.join(root, rel),
            [f'{path} {label}' for path, label in samples])
        files.append(rel)
        images[split] = []
        for path, label in samples:
            size = _photo_size(rng, 500, 333, 400)
            _write_photo(
                osp.join(root, split, path), rng, size, [label], palette)
            files.append(f'{split}/{path}')
            images[split].append(dict(path=path, size=size, label=label))
    return dict(
        root=root,
        num_train=len(train),
        num_val=len(val),
        wnids=wnids,
        labels=list(range(num_classes)),
        label_names=[IMAGENET_CATEGORIES[i] for i in range(num_classes)],
        num_classes_metainfo=len(IMAGENET_CATEGORIES),
        files=files,
        images=images)
