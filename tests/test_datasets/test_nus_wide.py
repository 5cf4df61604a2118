# Copyright (c) mmovl contributors. All rights reserved.
"""NUSWideDataset and its converter on a tiny NUS-WIDE in the official
layout (Windows paths, CRLF endings, tab-separated tag rows)."""
import importlib.util
import logging
import os
import os.path as osp
import shutil
import subprocess
import sys
from contextlib import contextmanager

import numpy as np
import pytest
import torch
from mmengine.logging import MMLogger
from PIL import Image

import mmovl  # noqa: F401
from mmovl.datasets.nus_wide import NUSWideDataset
from mmovl.evaluation import ZSLMultiLabelMetric

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

# Concept order as in Concepts81.txt; 'whales' is no tag, as in the real
# files. Tag order as in TagList1k.txt.
CONCEPTS = ['sky', 'animal', 'whales', 'water']
TAGS = ['nature', 'sky', 'blue', 'water', 'animal', 'sunset']
SEEN = ['nature', 'blue', 'sunset']  # tags that are not concepts
VOCAB = {'all': SEEN + CONCEPTS, 'seen': SEEN, 'unseen': CONCEPTS}
# Imagelist.txt order: (folder/file, user tags, human concepts). The tags
# 'sky' and 'water' are not the concepts: airport is tagged water but no
# rater saw water.
# yapf: disable
IMAGES = [
    ('actor/0001_1001.jpg', {'nature', 'sky'}, {'sky'}),
    ('airport/0002_1002.jpg', {'blue', 'water'}, set()),
    ('animal/0003_1003.jpg', {'animal', 'sunset', 'nature'},
     {'animal', 'water'}),
    ('beach_sea/0004_1004.jpg', set(), {'whales', 'water'}),
    ('bird/0005_1005.jpg', {'water', 'blue', 'sunset'}, {'water'}),
    ('cat/0006_1006.jpg', {'sky'}, {'sky', 'animal'}),
]
# yapf: enable
SPLITS = {'Train': [4, 0, 2, 5], 'Test': [3, 1]}  # not in Imagelist order


def _write(path, lines):
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'w', newline='') as f:
        f.write(''.join(f'{line}\r\n' for line in lines))


def _tag_row(tags):
    return ''.join(f'{int(t in tags)}\t' for t in TAGS)  # trailing tab


def make_nus_wide(root):
    """Write the fixture in the official layout; return the root."""
    root = str(root)
    _write(f'{root}/ConceptsList/Concepts81.txt', CONCEPTS)
    _write(f'{root}/NUS_WID_Tags/TagList1k.txt', TAGS)
    _write(f'{root}/ImageList/Imagelist.txt', [
        'C:\\ImageData\\Flickr\\' + p.replace('/', '\\') for p, _, _ in IMAGES
    ])
    _write(f'{root}/NUS_WID_Tags/AllTags1k.txt',
           [_tag_row(tags) for _, tags, _ in IMAGES])
    for c in CONCEPTS:
        _write(f'{root}/Groundtruth/AllLabels/Labels_{c}.txt',
               [int(c in concepts) for _, _, concepts in IMAGES])
    for split, rows in SPLITS.items():
        _write(f'{root}/ImageList/{split}Imagelist.txt',
               [IMAGES[r][0].replace('/', '\\') for r in rows])
        _write(f'{root}/NUS_WID_Tags/{split}_Tags1k.dat',
               [_tag_row(IMAGES[r][1]) for r in rows])
        for c in CONCEPTS:
            _write(
                f'{root}/Groundtruth/TrainTestLabels/Labels_{c}_{split}'
                '.txt', [int(c in IMAGES[r][2]) for r in rows])
    for i, (path, _, _) in enumerate(IMAGES):
        os.makedirs(osp.dirname(f'{root}/Flickr/{path}'), exist_ok=True)
        Image.new('RGB', (8, 8), (40 * i, 0, 0)).save(f'{root}/Flickr/{path}')
    return root


def read_bytes(path):
    with open(path, 'rb') as f:
        return f.read()


def _load_tool(name):
    path = osp.join(REPO, 'tools', 'dataset_converters', f'{name}.py')
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


converter = _load_tool('nus_wide_mkt_split')


@pytest.fixture(scope='module')
def nus_root(tmp_path_factory):
    """The official files plus the converter's output (read-only)."""
    root = make_nus_wide(tmp_path_factory.mktemp('nus_wide'))
    converter.main([root])
    return root


def _build(root, source, split, **kwargs):
    # mmengine's serialisation runs gc.collect() (0.2 s with torch loaded);
    # test_pipeline_and_metric keeps it.
    kwargs.setdefault('serialize_data', False)
    if source == 'npz':
        ann_file = f'annotations/nus_wide_mkt_{split.lower()}.npz'
    else:
        ann_file = f'ImageList/{split}Imagelist.txt'
        kwargs['label_source'] = source
    return NUSWideDataset(data_root=root, ann_file=ann_file, **kwargs)


def _expected_score(image, vocab):
    _, tags, concepts = image
    return [
        int(name in (tags if name in SEEN else concepts)) for name in vocab
    ]


@contextmanager
def _log_records():
    logger = MMLogger.get_current_instance()
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)


@pytest.mark.parametrize('label_split', ['all', 'seen', 'unseen'])
def test_vocabulary_order(nus_root, label_split):
    ds = _build(nus_root, 'npz', 'Test', label_split=label_split)
    vocab = tuple(VOCAB[label_split])
    assert ds.metainfo['classes'] == vocab
    assert ds.metainfo['seen_classes'] == tuple(n for n in vocab if n in SEEN)
    assert ds.metainfo['unseen_classes'] == tuple(n for n in vocab
                                                  if n in CONCEPTS)


@pytest.mark.parametrize('source', ['npz', 'all', 'split'])
@pytest.mark.parametrize('split', ['Train', 'Test'])
@pytest.mark.parametrize('label_split', ['all', 'seen', 'unseen'])
def test_labels_match_fixture(nus_root, source, split, label_split):
    ds = _build(nus_root, source, split, label_split=label_split)
    vocab = VOCAB[label_split]
    rows = SPLITS[split]
    assert len(ds) == len(rows)
    for i, r in enumerate(rows):
        info = ds.get_data_info(i)
        expected = _expected_score(IMAGES[r], vocab)
        assert info['img_path'] == osp.join(nus_root, 'Flickr', IMAGES[r][0])
        assert info['gt_score'].dtype == np.int8
        assert info['gt_score'].tolist() == expected
        assert info['gt_label'] == [j for j, v in enumerate(expected) if v]
        assert ds.get_cat_ids(i) == info['gt_label']


def test_hand_computed_test_split(nus_root):
    ds = _build(nus_root, 'npz', 'Test')
    # columns: nature blue sunset | sky animal whales water
    assert [ds.get_data_info(i)['gt_score'].tolist() for i in range(2)] == [
        [0, 0, 0, 0, 0, 1, 1],  # beach_sea: no tags; whales, water
        [0, 1, 0, 0, 0, 0, 0],  # airport: tagged blue (and water, a tag)
    ]


def test_filter_empty_and_no_score(nus_root):
    ds = _build(
        nus_root,
        'npz',
        'Test',
        label_split='seen',
        filter_empty=True,
        with_gt_score=False)
    assert len(ds) == 1  # beach_sea has no seen tag
    assert 'gt_score' not in ds.get_data_info(0)


def test_converter_outputs(nus_root, tmp_path):
    out = f'{nus_root}/annotations'
    with open(f'{out}/seen_labels.txt') as f:
        assert f.read() == ''.join(f'{n}\n' for n in SEEN)
    with open(f'{out}/unseen_labels.txt') as f:
        assert f.read() == ''.join(f'{n}\n' for n in CONCEPTS)
    # run as a script, from the per-split files, elsewhere: same bytes
    subprocess.run([
        sys.executable,
        osp.join(REPO, 'tools/dataset_converters/nus_wide_mkt_split.py'),
        nus_root, '--out-dir',
        str(tmp_path), '--label-source', 'split'
    ],
                   check=True,
                   capture_output=True)
    names = sorted(os.listdir(out))
    assert names == sorted(os.listdir(tmp_path)) == [
        'nus_wide_mkt_test.npz', 'nus_wide_mkt_train.npz', 'seen_labels.txt',
        'unseen_labels.txt'
    ]
    umask = os.umask(0)
    os.umask(umask)
    for name in names:
        assert read_bytes(f'{out}/{name}') == read_bytes(tmp_path / name)
        # permissions of an ordinary output (a temporary file has 0600)
        assert os.stat(f'{out}/{name}').st_mode & 0o777 == 0o666 & ~umask
    with np.load(f'{out}/nus_wide_mkt_test.npz', allow_pickle=False) as npz:
        assert npz['img_paths'].tolist() == [IMAGES[r][0] for r in (3, 1)]


def test_converter_is_atomic(tmp_path, monkeypatch):
    root = make_nus_wide(tmp_path)
    converter.main([root])
    out = f'{root}/annotations'
    before = {n: read_bytes(f'{out}/{n}') for n in os.listdir(out)}

    def interrupted(file, **arrays):
        file.write(b'half an archive')
        raise KeyboardInterrupt

    monkeypatch.setattr(np, 'savez_compressed', interrupted)
    with pytest.raises(KeyboardInterrupt):
        converter.main([root])
    after = {n: read_bytes(f'{out}/{n}') for n in os.listdir(out)}
    assert after == before  # old outputs intact, no temporary file left


def test_missing_images(tmp_path):
    root = make_nus_wide(tmp_path)
    lost = osp.join(root, 'Flickr', IMAGES[1][0])
    os.remove(lost)
    kwargs = dict(root=root, source='all', split='Test')
    assert len(_build(**kwargs)) == 2  # not looked for by default
    with pytest.raises(FileNotFoundError, match=IMAGES[1][0]) as err:
        _build(**kwargs, missing='error')
    assert '1 of 2 images' in str(err.value)
    with _log_records() as records:
        ds = _build(**kwargs, missing='skip')
    kept = osp.join(root, 'Flickr', IMAGES[3][0])
    assert [ds.get_data_info(0)['img_path']] == [kept]
    assert any('skipped 1 of 2 images' in r.getMessage() for r in records)


def test_bad_inputs(tmp_path, nus_root):
    with pytest.raises(ValueError, match='label_split'):
        _build(nus_root, 'npz', 'Test', label_split='novel')
    with pytest.raises(ValueError, match='missing'):
        _build(nus_root, 'npz', 'Test', missing='warn')
    with pytest.raises(ValueError, match='TrainImagelist'):
        NUSWideDataset(data_root=nus_root, ann_file='ImageList/Imagelist.txt')

    root = make_nus_wide(tmp_path / 'extra_row')
    with open(f'{root}/NUS_WID_Tags/AllTags1k.txt', 'a') as f:
        f.write('0\t1\t\r\n')
    with pytest.raises(ValueError, match='more than 6 rows'):
        _build(root, 'all', 'Test')
    with open(f'{root}/NUS_WID_Tags/Test_Tags1k.dat', 'w') as f:
        f.write('0 0 0 0 0 0\n0 2 0 0 0 0\n')
    with pytest.raises(ValueError, match=r'Test_Tags1k.dat, line 2: values'):
        _build(root, 'split', 'Test')
    with open(f'{root}/NUS_WID_Tags/Test_Tags1k.dat', 'w') as f:
        f.write('0 0 0 0 0 0\n0 1 0 0 0\n')
    with pytest.raises(ValueError, match='line 2: 5 values, expected 6'):
        _build(root, 'split', 'Test')

    root = make_nus_wide(tmp_path / 'unknown_image')
    with open(f'{root}/ImageList/TestImagelist.txt', 'a') as f:
        f.write('zoo\\0007_1007.jpg\r\n')
    with pytest.raises(ValueError, match='zoo/0007_1007.jpg is not in'):
        _build(root, 'all', 'Test')


def test_pipeline_and_metric(nus_root):
    ds = _build(
        nus_root,
        'npz',
        'Train',
        serialize_data=True,
        pipeline=[dict(type='LoadImageFromFile'),
                  dict(type='PackInputs')])
    # the scores of a label do not depend on the others: sliced ZSL
    metric = ZSLMultiLabelMetric(k=1, zsl_protocol='sliced')
    metric.dataset_meta = ds.metainfo
    samples = [ds[i]['data_samples'] for i in range(len(ds))]
    assert tuple(ds[0]['inputs'].shape) == (3, 8, 8)
    for sample in samples:
        # a perfect scorer: positives above negatives
        metric.process(None, [
            dict(
                pred_score=sample.gt_score + 0.1 * torch.rand(7),
                gt_score=sample.gt_score)
        ])
    results = metric.evaluate(len(ds))
    assert results['multi-label/gzsl/mAP'] == pytest.approx(100)
    assert results['multi-label/zsl/mAP'] == pytest.approx(100)


def test_official_layout_without_all_files(tmp_path):
    root = make_nus_wide(tmp_path)
    os.remove(f'{root}/NUS_WID_Tags/AllTags1k.txt')
    shutil.rmtree(f'{root}/Groundtruth/AllLabels')
    ds = _build(root, 'auto', 'Test')  # falls back to the per-split files
    assert ds.get_data_info(0)['gt_score'].tolist() == [0, 0, 0, 0, 0, 1, 1]
