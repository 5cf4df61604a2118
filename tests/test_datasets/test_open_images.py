# Copyright (c) mmovl contributors. All rights reserved.
"""OpenImagesMultiLabelDataset and its converter on tiny label files in the
official formats."""
import importlib.util
import logging
import os
import os.path as osp
from contextlib import contextmanager

import numpy as np
import pytest
import torch
from mmengine.logging import MMLogger
from PIL import Image
from sklearn.metrics import average_precision_score

import mmovl  # noqa: F401
from mmovl.datasets.open_images import (OpenImagesMultiLabelDataset,
                                        read_class_descriptions,
                                        read_image_labels)
from mmovl.evaluation import ZSLMultiLabelMetric

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

# v4 class-descriptions.csv: no header; a quoted name with a comma; two
# MIDs described as 'Organ' (as in the real file).
DESCRIPTIONS = [('/m/01', 'Cat'), ('/m/02', 'Dog'), ('/m/03', 'Organ'),
                ('/m/04', 'Organ'), ('/m/05', 'Rock, paper'),
                ('/m/06', 'Zebra'), ('/m/07', 'Kite'), ('/m/08', 'Rare')]
# yapf: disable
TRAIN_ROWS = [  # (ImageID, LabelName, Confidence)
    ('t1', '/m/01', 1), ('t1', '/m/02', 0), ('t1', '/m/03', 1),
    ('t2', '/m/01', 1), ('t2', '/m/03', 1), ('t2', '/m/08', 1),
    ('t3', '/m/02', 1), ('t3', '/m/01', 0), ('t3', '/m/04', 0),
    ('t4', '/m/02', 1), ('t4', '/m/03', 0), ('t4', '/m/06', 0),
]
TEST_ROWS = [  # e2 comes first; e3 lists /m/05 absent and present
    ('e2', '/m/04', 1), ('e2', '/m/05', 1), ('e2', '/m/06', 1),
    ('e1', '/m/01', 1), ('e1', '/m/04', 1), ('e1', '/m/05', 0),
    ('e1', '/m/07', 1),
    ('e3', '/m/04', 1), ('e3', '/m/02', 0), ('e3', '/m/08', 1),
    ('e3', '/m/05', 0), ('e3', '/m/05', 1),
    ('e4', '/m/07', 0), ('e4', '/m/06', 1),
]
# yapf: enable
# By hand, with --seen-min-images 1 and --num-unseen 2:
# training images verified present: /m/01 2, /m/02 2, /m/03 2, /m/08 1,
# others 0 -> seen (more than 1): /m/01 /m/02 /m/03, by MID.
# test images verified present, of labels never present in training:
# /m/04 3, /m/05 2, /m/06 1, /m/07 1 -> unseen: /m/04 /m/05.
SEEN = ['/m/01', '/m/02', '/m/03']
UNSEEN = ['/m/04', '/m/05']
NAMES = {
    'all': ('Cat', 'Dog', 'Organ (/m/03)', 'Organ (/m/04)', 'Rock, paper'),
    'seen': ('Cat', 'Dog', 'Organ (/m/03)'),
    'unseen': ('Organ (/m/04)', 'Rock, paper'),
}
# gt_score over Cat, Dog, Organ (/m/03), Organ (/m/04), Rock, paper:
# 1 verified present, 0 verified absent, -1 nobody asked.
TRAIN_SCORES = {
    't1': [1, 0, 1, -1, -1],
    't2': [1, -1, 1, -1, -1],
    't3': [0, 1, -1, 0, -1],
    't4': [-1, 1, 0, -1, -1],
}
TEST_SCORES = {  # in order of first appearance
    'e2': [-1, -1, -1, 1, 1],
    'e1': [1, -1, -1, 1, 0],
    'e3': [-1, 0, -1, 1, 1],  # present wins over absent
    'e4': [-1, -1, -1, -1, -1],  # only labels outside the vocabulary
}
COLUMNS = {'all': slice(0, 5), 'seen': slice(0, 3), 'unseen': slice(3, 5)}


def _write(path, text):
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'w', newline='') as f:
        f.write(text)


def _labels_csv(rows, source='verification'):
    return 'ImageID,Source,LabelName,Confidence\n' + ''.join(
        f'{i},{source},{m},{c}\n' for i, m, c in rows)


def make_open_images(root):
    root = str(root)
    _write(
        f'{root}/class-descriptions.csv',
        ''.join(f'{m},"{n}"\n' if ',' in n else f'{m},{n}\n'
                for m, n in DESCRIPTIONS))
    _write(f'{root}/train-annotations-human-imagelabels.csv',
           _labels_csv(TRAIN_ROWS))
    _write(f'{root}/test-annotations-human-imagelabels.csv',
           _labels_csv(TEST_ROWS, 'crowdsource-verification'))
    for image in TEST_SCORES:
        os.makedirs(f'{root}/test', exist_ok=True)
        Image.new('RGB', (8, 8)).save(f'{root}/test/{image}.jpg')
    return root


def _load_tool(name):
    path = osp.join(REPO, 'tools', 'dataset_converters', f'{name}.py')
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


converter = _load_tool('open_images_mkt_split')


def open_bytes(path):
    with open(path, 'rb') as f:
        return f.read()


def _convert(root, out_dir, *extra):
    converter.main([
        '--train-csv', f'{root}/train-annotations-human-imagelabels.csv',
        '--test-csv', f'{root}/test-annotations-human-imagelabels.csv',
        '--class-descriptions', f'{root}/class-descriptions.csv',
        '--seen-min-images', '1', '--num-unseen', '2', '--out-dir',
        str(out_dir), *extra
    ])


@pytest.fixture(scope='module')
def oi_root(tmp_path_factory):
    root = make_open_images(tmp_path_factory.mktemp('open_images'))
    _convert(root, f'{root}/annotations')
    return root


def _build(root, split='test', **kwargs):
    kwargs.setdefault('serialize_data', False)  # skips a slow gc.collect()
    return OpenImagesMultiLabelDataset(
        data_root=root,
        ann_file=f'annotations/open_images_mkt_{split}.npz',
        data_prefix=split,
        **kwargs)


def _scores(ds):
    return {
        ds.get_data_info(i)['img_id']: ds.get_data_info(i)['gt_score']
        for i in range(len(ds))
    }


def test_converter_label_lists(oi_root):
    with open(f'{oi_root}/annotations/seen_labels.csv') as f:
        assert f.read() == ('LabelName,DisplayName,TrainImages\n'
                            '/m/01,Cat,2\n/m/02,Dog,2\n/m/03,Organ,2\n')
    with open(f'{oi_root}/annotations/unseen_labels.csv') as f:
        assert f.read() == ('LabelName,DisplayName,TestImages\n'
                            '/m/04,Organ,3\n/m/05,"Rock, paper",2\n')


@pytest.mark.parametrize('label_split', ['all', 'seen', 'unseen'])
def test_vocabulary_and_scores(oi_root, label_split):
    cols = COLUMNS[label_split]
    for split, expected in (('train', TRAIN_SCORES), ('test', TEST_SCORES)):
        ds = _build(oi_root, split, label_split=label_split)
        meta = ds.metainfo
        assert meta['classes'] == NAMES[label_split]
        assert meta['class_mids'] == tuple((SEEN + UNSEEN)[cols])
        assert meta['seen_classes'] == tuple(n for n in NAMES[label_split]
                                             if n in NAMES['seen'])
        assert meta['unseen_classes'] == tuple(n for n in NAMES[label_split]
                                               if n in NAMES['unseen'])
        scores = _scores(ds)
        assert list(scores) == list(expected)  # file order of images
        for image, score in scores.items():
            assert score.dtype == np.int8
            assert score.tolist() == expected[image][cols]
            info = ds.get_data_info(list(scores).index(image))
            assert info['gt_label'] == np.flatnonzero(score == 1).tolist()
            assert info['img_path'] == osp.join(oi_root, split, f'{image}.jpg')


def test_official_csv_matches_npz(oi_root):
    kwargs = dict(
        class_descriptions='class-descriptions.csv',
        seen_file='annotations/seen_labels.csv',
        unseen_file='annotations/unseen_labels.csv',
        data_prefix='test',
        serialize_data=False)
    ds = OpenImagesMultiLabelDataset(
        data_root=oi_root,
        ann_file='test-annotations-human-imagelabels.csv',
        **kwargs)
    npz = _build(oi_root)
    assert ds.metainfo == npz.metainfo
    official, converted = _scores(ds), _scores(npz)
    assert list(official) == list(converted)
    for image, score in official.items():
        assert score.tolist() == converted[image].tolist()


def test_given_label_lists_and_v6_descriptions(oi_root, tmp_path):
    # classes-trainable.txt style (a MID a line) fixes the seen order; the
    # v6 descriptions have a header.
    _write(f'{tmp_path}/classes-trainable.txt', '/m/02\n/m/01\n')
    _write(f'{tmp_path}/unseen.txt', '/m/05\n')
    _write(
        f'{tmp_path}/oidv6-class-descriptions.csv',
        'LabelName,DisplayName\n' + ''.join(f'{m},"{n}"\n'
                                            for m, n in DESCRIPTIONS))
    assert read_class_descriptions(
        f'{tmp_path}/oidv6-class-descriptions.csv') == dict(DESCRIPTIONS)
    converter.main([
        '--train-csv', f'{oi_root}/train-annotations-human-imagelabels.csv',
        '--test-csv', f'{oi_root}/test-annotations-human-imagelabels.csv',
        '--class-descriptions', f'{tmp_path}/oidv6-class-descriptions.csv',
        '--seen-list', f'{tmp_path}/classes-trainable.txt', '--unseen-list',
        f'{tmp_path}/unseen.txt', '--out-dir', f'{tmp_path}/annotations'
    ])
    ds = _build(str(tmp_path))
    assert ds.metainfo['classes'] == ('Dog', 'Cat', 'Rock, paper')
    # the label 'Organ' is out of this vocabulary: no suffix
    expected = [[-1, -1, 1], [-1, 1, 0], [0, -1, 1], [-1, -1, -1]]
    assert [s.tolist() for s in _scores(ds).values()] == expected


def test_converter_is_deterministic_and_atomic(oi_root, tmp_path, monkeypatch):
    _convert(oi_root, tmp_path)
    out = f'{oi_root}/annotations'
    names = sorted(os.listdir(out))
    assert names == sorted(os.listdir(tmp_path))
    for name in names:
        assert (tmp_path / name).read_bytes() == open_bytes(f'{out}/{name}')
    before = {n: (tmp_path / n).read_bytes() for n in names}

    def interrupted(file, **arrays):
        file.write(b'half an archive')
        raise OSError('disk full')

    monkeypatch.setattr(np, 'savez_compressed', interrupted)
    with pytest.raises(OSError, match='disk full'):
        _convert(oi_root, tmp_path)
    after = {n: (tmp_path / n).read_bytes() for n in os.listdir(tmp_path)}
    assert after == before  # old outputs intact, no temporary file left


def test_metric_masks_unknown_labels(oi_root):
    ds = _build(
        oi_root, serialize_data=True, pipeline=[dict(type='PackInputs')])
    rng = np.random.default_rng(0)
    scores = rng.random((len(ds), 5)).astype(np.float32)
    # random scores of each label alone: sliced ZSL
    metric = ZSLMultiLabelMetric(k=1, zsl_protocol='sliced')
    metric.dataset_meta = ds.metainfo
    for i in range(len(ds)):
        sample = ds[i]['data_samples']
        metric.process(None, [
            dict(
                pred_score=torch.from_numpy(scores[i]),
                gt_score=sample.gt_score)
        ])
    result = metric.evaluate(len(ds))
    # independently: AP of each label over its verified images only
    target = np.array(list(TEST_SCORES.values()))
    aps = [
        average_precision_score(target[known, j], scores[known, j])
        for j in range(5) for known in [target[:, j] >= 0]
        if (target[known, j] == 1).any()
    ]
    assert result['multi-label/gzsl/mAP'] == pytest.approx(100 * np.mean(aps))


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


def test_missing_images(oi_root):
    with pytest.raises(FileNotFoundError, match=r'train[/\\]t1\.jpg'):
        _build(oi_root, 'train', missing='error')
    with _log_records() as records:
        ds = _build(oi_root, 'train', missing='skip')
    assert len(ds) == 0
    assert any('skipped 4 of 4 images' in r.getMessage() for r in records)
    assert len(_build(oi_root, missing='error')) == 4


def test_bad_inputs(oi_root, tmp_path):
    with pytest.raises(ValueError, match='holds its vocabulary'):
        _build(oi_root, seen_file='annotations/seen_labels.csv')
    with pytest.raises(ValueError, match='needs class_descriptions'):
        OpenImagesMultiLabelDataset(
            data_root=oi_root,
            ann_file='test-annotations-human-imagelabels.csv')
    _write(f'{tmp_path}/machine.csv',
           _labels_csv([('a', '/m/01', 1), ('a', '/m/02', 0.7)], 'machine'))
    with pytest.raises(ValueError, match=r"line 3: Confidence '0.7'"):
        read_image_labels(f'{tmp_path}/machine.csv')
    _write(f'{tmp_path}/boxes.csv', 'ImageID,XMin\na,0.1\n')
    with pytest.raises(ValueError, match='header must name'):
        read_image_labels(f'{tmp_path}/boxes.csv')
    _write(f'{tmp_path}/few.csv', '/m/01,Cat\n/m/02,Dog\n')
    with pytest.raises(ValueError, match='no class description'):
        converter.main([
            '--train-csv', f'{oi_root}/train-annotations-human-imagelabels'
            '.csv', '--test-csv',
            f'{oi_root}/test-annotations-human-imagelabels.csv',
            '--class-descriptions', f'{tmp_path}/few.csv', '--out-dir',
            str(tmp_path / 'out')
        ])
    assert not osp.exists(tmp_path / 'out')
