# Copyright (c) mmovl contributors. All rights reserved.
"""Build MKT's open-vocabulary split of NUS-WIDE from the official files.

    python tools/dataset_converters/nus_wide_mkt_split.py data/nus_wide \\
        [--out-dir data/nus_wide/annotations] [--label-source auto]

Inputs, under the NUS-WIDE folder as distributed:

- ``ConceptsList/Concepts81.txt`` (or ``Concepts81.txt``): the 81 concepts.
- ``NUS_WID_Tags/TagList1k.txt``: the 1,000 most frequent Flickr tags.
- ``ImageList/TrainImagelist.txt``, ``ImageList/TestImagelist.txt``: the
  official split, entries like ``actor\\0001_2124494179.jpg``; the images
  are ``Flickr/actor/0001_2124494179.jpg``.
- Labels, label source ``all`` (LESA's route, which BiAM and MKT inherit;
  the default when the files exist): ``ImageList/Imagelist.txt`` (all
  269,648 images, Windows paths), which orders the rows of
  ``NUS_WID_Tags/AllTags1k.txt`` (0/1, 1,000 columns) and of
  ``Groundtruth/AllLabels/Labels_<concept>.txt`` (one 0/1 a line).
  Label source ``split``: ``NUS_WID_Tags/{Train,Test}_Tags1k.dat`` and
  ``Groundtruth/TrainTestLabels/Labels_<concept>_{Train,Test}.txt``, whose
  rows follow the split lists.

Outputs, in ``--out-dir`` (default ``<root>/annotations``), each written to
a temporary file and renamed, identical bytes for identical inputs:

- ``seen_labels.txt``: the seen labels, one a line, in vocabulary order.
- ``unseen_labels.txt``: the unseen labels.
- ``nus_wide_mkt_train.npz``, ``nus_wide_mkt_test.npz``: compact
  annotations (format: ``mmovl/datasets/mkt_split.py``) for
  :class:`mmovl.datasets.nus_wide.NUSWideDataset`; no pickle.

How MKT's counts arise:

- 81 unseen labels: the concepts, with human ground truth.
- 925 seen labels: the tags of ``TagList1k.txt`` that are not concepts, as
  in LESA's ``get_seen_unseen_classes`` (github hbdat/cvpr20_LESA). 75 of
  the 81 concepts are among the 1,000 tags (all but computer, fire, map,
  swimmers, tattoo and whales): 1,000 - 75 = 925. Vocabulary order: seen
  (TagList1k order) then unseen (Concepts81 order), 1,006 labels; MKT
  indexes its label embeddings the same way (``[:925]`` seen,
  ``[925:]`` unseen).
- 161,789 training and 107,859 test images: the lines of the two official
  split lists (together ``Imagelist.txt``'s 269,648).
- Labels: seen labels from the user-tag matrix, unseen from the human
  ground truth. LESA codes them ``2x - 1`` (+1/-1); mmovl's ``gt_score``
  is 1/0. Every entry is known.

What could not be verified offline (no access to the official download):

- The 925 was checked only against the copies of ``TagList1k.txt`` and
  ``Concepts81.txt`` in BiAM's repository (github akshitac8/BiAM), not the
  official archive.
- The exact layout of the official files is inferred from public parsers
  (LESA's, among others): Windows paths in ``Imagelist.txt``, tab-separated
  0/1 rows in ``AllTags1k.txt``. The reader accepts any white space and
  CRLF endings, and matches split entries to ``Imagelist.txt`` by
  ``folder/file`` ignoring case; it refuses anything else with the file
  and line.
- MKT trained on the label files (``.h5``) BiAM extracted from the images
  it could download; whether that kept all 161,789 / 107,859 images, and
  the label order within each group, is not shown by its code. Images your
  copy lacks can be skipped at load time (``missing='skip'``).
"""
import argparse
import os.path as osp

import numpy as np

from mmovl.datasets.mkt_split import save_annotation
from mmovl.datasets.nus_wide import NUSWideDataset
from mmovl.datasets.nus_wide_official import (NUS_WIDE_MKT_COUNTS,
                                              NUS_WIDE_SPLITS, load_nus_wide,
                                              nus_wide_vocabulary)
from mmovl.utils.fileio import atomic_write_lines
from mmovl.utils.progress import progress_factory


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Build MKT's NUS-WIDE split (925 seen / 81 unseen)")
    parser.add_argument('root', help='the NUS-WIDE folder')
    parser.add_argument(
        '--out-dir', help='output folder (default: <root>/annotations)')
    parser.add_argument(
        '--label-source',
        choices=('auto', 'all', 'split'),
        default='auto',
        help='read AllTags1k.txt + AllLabels ("all") or the per-split '
        'files ("split"); "auto" prefers "all"')
    return parser.parse_args(argv)


def _note_count(what: str, found: int, expected: int) -> None:
    if found != expected:
        print(f'note: {found} {what}; MKT\'s split has {expected}')


def main(argv=None):
    args = parse_args(argv)
    out_dir = args.out_dir or osp.join(args.root, 'annotations')
    seen, unseen = nus_wide_vocabulary(args.root)
    _note_count('seen labels', len(seen), NUS_WIDE_MKT_COUNTS['seen'])
    _note_count('unseen labels', len(unseen), NUS_WIDE_MKT_COUNTS['unseen'])
    for split in NUS_WIDE_SPLITS:
        print(f'reading the {split} split')
        with progress_factory(f'{split} rows') as progress:
            ann = load_nus_wide(
                args.root, split, args.label_source, progress=progress)
        path = osp.join(out_dir, f'nus_wide_mkt_{split.lower()}.npz')
        save_annotation(path, ann, NUSWideDataset.DATASET)
        columns = ann['pos_indices']
        num_seen = int(np.sum(columns < len(seen)))
        print(f'{path}: {len(ann["img_paths"])} images, {num_seen} seen '
              f'and {len(columns) - num_seen} unseen positive labels')
        _note_count(f'{split} images', len(ann['img_paths']),
                    NUS_WIDE_MKT_COUNTS[split])
    atomic_write_lines(osp.join(out_dir, 'seen_labels.txt'), seen)
    atomic_write_lines(osp.join(out_dir, 'unseen_labels.txt'), unseen)
    print(f'{out_dir}: seen_labels.txt ({len(seen)}), unseen_labels.txt '
          f'({len(unseen)})')


if __name__ == '__main__':
    main()
