# Copyright (c) mmovl contributors. All rights reserved.
"""Build MKT's open-vocabulary split of Open Images from the official files.

    python tools/dataset_converters/open_images_mkt_split.py \\
        --train-csv data/openimages/train-annotations-human-imagelabels.csv \\
        --test-csv data/openimages/test-annotations-human-imagelabels.csv \\
        --class-descriptions data/openimages/class-descriptions.csv \\
        --seen-list data/openimages/classes-trainable.txt \\
        --out-dir data/openimages/annotations

Inputs (Open Images v4, release 2018_04, which MKT, BiAM and LESA use;
later releases have the same formats):

- ``--train-csv``, ``--test-csv``: human-verified image-level labels,
  header ``ImageID,Source,LabelName,Confidence``; Confidence 1 = verified
  present, 0 = verified absent; a label without a row is unknown.
- ``--class-descriptions``: ``class-descriptions.csv`` (``MID,Name``, no
  header) or ``oidv6-class-descriptions.csv`` (header
  ``LabelName,DisplayName``).
- ``--seen-list`` (optional): v4's ``classes-trainable.txt``, a MID a line.
- ``--unseen-list`` (optional): the unseen MIDs, a MID a line (or a CSV
  whose first field is the MID).

Outputs, in ``--out-dir``, each written to a temporary file and renamed,
identical bytes for identical inputs:

- ``seen_labels.csv``: ``LabelName,DisplayName,TrainImages`` (training
  images verified present), in vocabulary order.
- ``unseen_labels.csv``: ``LabelName,DisplayName,TestImages``.
- ``open_images_mkt_train.npz``, ``open_images_mkt_test.npz``: compact
  annotations (format: ``mmovl/datasets/mkt_split.py``) with verified
  negatives, for
  :class:`mmovl.datasets.open_images.OpenImagesMultiLabelDataset`; every
  image of each CSV, its labels restricted to seen + unseen; no pickle.

How MKT's counts arise:

- 7,186 seen labels: v4's "trainable" classes, shipped as
  ``classes-trainable.txt`` (v4's statistics list 7,186 trainable classes
  for the human-verified labels); BiAM's and LESA's loaders read that file
  as the seen label map. The papers describe them as the labels with more
  than 100 training images. Without ``--seen-list`` the converter applies
  that description: labels verified present on more than
  ``--seen-min-images`` (100) training images, ordered by MID.
- 400 unseen labels: "the 400 most frequent test labels absent from
  training". Without ``--unseen-list``: labels verified present on at
  least one test image and on no training image, not seen, the
  ``--num-unseen`` (400) with the most test images, ties broken by MID,
  in that order.
- Images: every image of each label file (v4: 9,011,219 training and
  125,436 test images carry labels); MKT reports about 9M and 125,456.
  Which images are on disk depends on the download; see ``missing``.
- BiAM codes labels ``2 * Confidence - 1`` (+1/-1, 0 unknown); mmovl's
  ``gt_score`` is 1 / 0 / -1 (unknown).

What could not be verified offline (no access to the 2018_04 files):

- That the computed seen labels equal ``classes-trainable.txt`` (whether
  "more than 100" counts verified-present images, or all verified rows, is
  not stated); pass ``--seen-list`` to use the official list.
- LESA's exact 400: its ``top_400_unseen.csv`` indexes rows of
  ``unseen_labels.pkl``, a pickled array of candidate MIDs we could not
  inspect (and would not unpickle); whether "absent from training" means no
  positive or no row at all is not stated. To reproduce that list, write its
  MIDs one a line and pass ``--unseen-list``.
- MKT's exact image lists (it used BiAM's extracted features of the images
  that could be downloaded).
"""
import argparse
import csv
import io
import os.path as osp

from mmovl.datasets.mkt_split import save_annotation
from mmovl.datasets.open_images import (OPEN_IMAGES_MKT_COUNTS,
                                        OpenImagesMultiLabelDataset,
                                        build_open_images_annotation,
                                        count_positive_images,
                                        read_class_descriptions,
                                        read_image_labels, read_label_list)
from mmovl.utils.fileio import atomic_write_lines
from mmovl.utils.progress import progress_factory


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Build MKT's Open Images split (7,186 seen / 400 "
        'unseen)')
    parser.add_argument('--train-csv', required=True)
    parser.add_argument('--test-csv', required=True)
    parser.add_argument('--class-descriptions', required=True)
    parser.add_argument(
        '--seen-list', help='e.g. classes-trainable.txt; computed if absent')
    parser.add_argument(
        '--unseen-list', help='unseen MIDs; computed if absent')
    parser.add_argument(
        '--seen-min-images',
        type=int,
        default=100,
        help='computed seen labels: more than this many training images')
    parser.add_argument(
        '--num-unseen',
        type=int,
        default=400,
        help='computed unseen labels: this many most frequent')
    parser.add_argument(
        '--img-suffix', default='.jpg', help='image file = ImageID + this')
    parser.add_argument('--out-dir', required=True)
    return parser.parse_args(argv)


def _read(path, what):
    print(f'reading {what}: {path}')
    with progress_factory(f'{what} (bytes)') as progress:
        labels = read_image_labels(path, progress=progress)
    print(f'{len(labels.image_ids)} images, {len(labels.mids)} labels, '
          f'{len(labels.image)} rows')
    return labels


def _csv_lines(header, rows):
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator='\n').writerows([header] + rows)
    return buffer.getvalue().splitlines()


def main(argv=None):
    args = parse_args(argv)
    names = read_class_descriptions(args.class_descriptions)
    train = _read(args.train_csv, 'training labels')
    test = _read(args.test_csv, 'test labels')
    train_counts = count_positive_images(train)
    test_counts = count_positive_images(test)

    if args.seen_list:
        seen = read_label_list(args.seen_list)
    else:
        seen = sorted(m for m, n in train_counts.items()
                      if n > args.seen_min_images)
    if args.unseen_list:
        unseen = read_label_list(args.unseen_list)
    else:
        seen_set = set(seen)
        candidates = [
            (-n, m) for m, n in test_counts.items()
            if n > 0 and m not in seen_set and train_counts.get(m, 0) == 0
        ]
        unseen = [m for _, m in sorted(candidates)[:args.num_unseen]]
    for what, found in (('seen', len(seen)), ('unseen', len(unseen))):
        if found != OPEN_IMAGES_MKT_COUNTS[what]:
            print(f'note: {found} {what} labels; MKT\'s split has '
                  f'{OPEN_IMAGES_MKT_COUNTS[what]}')

    for split, labels in (('train', train), ('test', test)):
        ann = build_open_images_annotation(labels, seen, unseen, names,
                                           args.img_suffix)
        path = osp.join(args.out_dir, f'open_images_mkt_{split}.npz')
        save_annotation(path, ann, OpenImagesMultiLabelDataset.DATASET)
        print(f'{path}: {len(ann["img_paths"])} images, '
              f'{len(ann["pos_indices"])} positive and '
              f'{len(ann["neg_indices"])} negative labels')
    atomic_write_lines(
        osp.join(args.out_dir, 'seen_labels.csv'),
        _csv_lines(['LabelName', 'DisplayName', 'TrainImages'],
                   [[m, names[m], train_counts.get(m, 0)] for m in seen]))
    atomic_write_lines(
        osp.join(args.out_dir, 'unseen_labels.csv'),
        _csv_lines(['LabelName', 'DisplayName', 'TestImages'],
                   [[m, names[m], test_counts.get(m, 0)] for m in unseen]))
    print(f'{args.out_dir}: seen_labels.csv ({len(seen)}), '
          f'unseen_labels.csv ({len(unseen)})')


if __name__ == '__main__':
    main()
