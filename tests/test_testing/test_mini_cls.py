# Copyright (c) mmovl contributors. All rights reserved.
"""The miniature classification data sets load through the real configs'
dataset settings (only ``data_root`` changed) with the labels their
generator meant."""
import copy
import os
import os.path as osp
from collections import Counter

import cv2
import pytest
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmpretrain.datasets.categories import IMAGENET_CATEGORIES
from mmpretrain.registry import DATASETS

import mmovl  # noqa: F401
from mmovl.datasets import NUSWideDataset
from mmovl.testing.mini_cls import (make_imagenet, make_nus_wide,
                                    make_open_images)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
NUS_WIDE_CFG = osp.join(REPO, 'configs', 'mkt', 'mkt_vit_b16_20e_nuswide.py')
OPEN_IMAGES_CFG = osp.join(REPO, 'configs', 'mkt',
                           'mkt_vit_b16_20e_openimages.py')
IMAGENET_CFG = osp.join(REPO, 'configs', 'unicl', 'unicl_vit_b16_32e_in1k.py')


@pytest.fixture(scope='module')
def nus_wide(tmp_path_factory):
    return make_nus_wide(str(tmp_path_factory.mktemp('nus_wide')))


@pytest.fixture(scope='module')
def open_images(tmp_path_factory):
    return make_open_images(str(tmp_path_factory.mktemp('openimages')))


@pytest.fixture(scope='module')
def imagenet(tmp_path_factory):
    return make_imagenet(str(tmp_path_factory.mktemp('imagenet')))


def _dataset_cfgs(path):
    """The train and test dataset configs of a config file."""
    cfg = Config.fromfile(path)
    return dict(
        train=copy.deepcopy(cfg.train_dataloader.dataset),
        test=copy.deepcopy(cfg.test_dataloader.dataset))


def _build(ds_cfg, root):
    init_default_scope('mmpretrain')
    ds_cfg = copy.deepcopy(ds_cfg)
    ds_cfg.data_root = root
    return DATASETS.build(ds_cfg)


def _check_image(path, size):
    img = cv2.imread(path)
    assert img is not None, f'{path} does not decode'
    assert (img.shape[1], img.shape[0]) == tuple(size)


def _check_packed(ds, idx, size, expected_score=None, expected_label=None):
    """Load sample ``idx`` through the pipeline and compare its labels."""
    packed = ds[idx]
    sample = packed['data_samples']
    assert tuple(sample.ori_shape) == (size[1], size[0])
    assert packed['inputs'].shape[0] == 3
    if expected_score is not None:
        assert sample.gt_score.tolist() == expected_score
        assert sample.gt_label.tolist() == [
            i for i, s in enumerate(expected_score) if s == 1
        ]
    if expected_label is not None:
        assert sample.gt_label.tolist() == [expected_label]
    return sample


# -- NUS-WIDE ----------------------------------------------------------------
def test_nus_wide_loads_as_the_config_says(nus_wide):
    root = nus_wide['root']
    seen = [t for t in nus_wide['tags'] if t not in nus_wide['concepts']]
    unseen = list(nus_wide['concepts'])
    assert seen == nus_wide['seen_classes'] and len(seen) == 24
    assert len(unseen) == 8
    cfgs = _dataset_cfgs(NUS_WIDE_CFG)
    for split, key, vocab in (('Train', 'train', seen), ('Test', 'test',
                                                         seen + unseen)):
        ds = _build(cfgs[key], root)
        records = nus_wide['images'][split]
        assert ds.metainfo['classes'] == tuple(vocab)
        assert ds.metainfo['unseen_classes'] == tuple(n for n in vocab
                                                      if n in unseen)
        assert len(ds) == len(records) == nus_wide[f'num_{key}']
        scores = []
        for i, rec in enumerate(records):
            positives = {t for t in rec['tags'] if t in seen}
            positives |= set(rec['concepts'])
            scores.append([int(n in positives) for n in vocab])
            info = ds.get_data_info(i)
            assert info['img_path'] == osp.join(root, 'Flickr', rec['path'])
            assert info['gt_score'].tolist() == scores[-1]
            _check_image(info['img_path'], rec['size'])
        if key == 'train':
            assert all(any(s) for s in scores)  # a seen label each
        for i in (0, len(records) - 1):
            _check_packed(ds, i, records[i]['size'], scores[i])
        # the per-split label files tell the same
        official = NUSWideDataset(
            data_root=root,
            ann_file=f'ImageList/{split}Imagelist.txt',
            label_source='split',
            label_split=cfgs[key].label_split)
        assert [
            official.get_data_info(i)['gt_score'].tolist()
            for i in range(len(official))
        ] == scores
    assert 'note: 24 seen labels' in nus_wide['converter_output']


def test_nus_wide_official_files(nus_wide):
    root = nus_wide['root']
    with open(osp.join(root, 'ImageList', 'Imagelist.txt'), 'rb') as f:
        lines = f.read().split(b'\r\n')
    assert lines[-1] == b'' and len(lines) - 1 == 24
    assert lines[0].startswith(b'C:\\ImageData\\Flickr\\')
    for rel in nus_wide['files']:
        assert osp.isfile(osp.join(root, rel)), rel
    # every concept is positive on a test image, every label occurs
    test = nus_wide['images']['Test']
    assert set().union(*(r['concepts']
                         for r in test)) == set(nus_wide['concepts'])
    assert set().union(*(r['tags'] for r in test)) == set(nus_wide['tags'])


def test_nus_wide_same_seed_same_bytes(nus_wide, tmp_path):
    other = make_nus_wide(str(tmp_path / 'again'), num_train=3, num_test=2)
    again = make_nus_wide(str(tmp_path / 'again2'), num_train=3, num_test=2)
    assert other['files'] == again['files']
    for rel in other['files']:
        with open(osp.join(other['root'], rel),
                  'rb') as f1, open(osp.join(again['root'], rel), 'rb') as f2:
            assert f1.read() == f2.read(), rel
    seed1 = make_nus_wide(
        str(tmp_path / 'seed1'), seed=1, num_train=3, num_test=2)
    assert seed1['images'] != other['images']
    leftovers = [
        n for _, _, names in os.walk(tmp_path) for n in names
        if n.startswith('.tmp-')
    ]
    assert not leftovers


# -- Open Images -------------------------------------------------------------
def _open_images_vocab(summary):
    """Seen MIDs (classes-trainable order), unseen MIDs (most test
    positives first, ties by MID) and display names (a name shared by
    several MIDs gets the MID appended), from the generator's record."""
    role = {m: r for m, _, r in summary['classes']}
    seen = [m for m, _, r in summary['classes'] if r == 'seen']
    counts = Counter(m for rec in summary['images']['test']
                     for m in rec['positive'])
    unseen = sorted((m for m in role if role[m] == 'unseen'),
                    key=lambda m: (-counts[m], m))
    raw = {m: n for m, n, _ in summary['classes']}
    shared = Counter(raw[m] for m in seen + unseen)
    names = {
        m: f'{raw[m]} ({m})' if shared[raw[m]] > 1 else raw[m]
        for m in raw
    }
    return seen, unseen, names


def test_open_images_loads_as_the_config_says(open_images):
    root = open_images['root']
    seen, unseen, names = _open_images_vocab(open_images)
    assert (len(seen), len(unseen)) == (12, 6)
    assert unseen == open_images['unseen_mids']
    assert 'Organ (/m/0mini12)' in names.values()
    cfgs = _dataset_cfgs(OPEN_IMAGES_CFG)
    num_unknown = num_negative = 0
    for split, vocab in (('train', seen), ('test', seen + unseen)):
        ds = _build(cfgs[split], root)
        records = open_images['images'][split]
        assert ds.metainfo['classes'] == tuple(names[m] for m in vocab)
        assert ds.metainfo['class_mids'] == tuple(vocab)
        assert len(ds) == len(records)
        scores = []
        for i, rec in enumerate(records):
            scores.append([
                1
                if m in rec['positive'] else 0 if m in rec['negative'] else -1
                for m in vocab
            ])
            info = ds.get_data_info(i)
            assert info['img_path'] == osp.join(root, split,
                                                f'{rec["image_id"]}.jpg')
            assert info['gt_score'].tolist() == scores[-1]
            _check_image(info['img_path'], rec['size'])
            num_unknown += scores[-1].count(-1)
            num_negative += scores[-1].count(0)
        for i in (0, len(records) - 1):
            _check_packed(ds, i, records[i]['size'], scores[i])
        if split == 'test':  # one image with nothing known in the vocabulary
            assert scores[0] == [-1] * len(vocab)
    assert num_unknown > 0 and num_negative > 0


def test_open_images_official_csvs(open_images):
    root = open_images['root']
    with open(osp.join(root, 'train-annotations-human-imagelabels.csv')) as f:
        rows = f.read().splitlines()
    assert rows[0] == 'ImageID,Source,LabelName,Confidence'
    ids = [r.split(',')[0] for r in rows[1:]]
    assert ids == sorted(ids) and all(len(i) == 16 for i in ids)
    assert {r.rsplit(',', 1)[1] for r in rows[1:]} == {'0', '1'}
    with open(osp.join(root, 'classes-trainable.txt')) as f:
        assert f.read().split() == open_images['seen_mids']
    # the out-of-vocabulary labels are verified present in training
    other = {m for m, _, r in open_images['classes'] if r == 'other'}
    positives = set().union(*(r['positive']
                              for r in open_images['images']['train']))
    assert other <= positives


# -- ImageNet ----------------------------------------------------------------
def test_imagenet_loads_as_the_config_says(imagenet):
    root = imagenet['root']
    cfg = Config.fromfile(IMAGENET_CFG)
    init_default_scope('mmpretrain')

    # validation: mmpretrain's ImageNet, all 1000 names in its metainfo
    val = _build(cfg.val_dataloader.dataset, root)
    records = imagenet['images']['val']
    assert val.metainfo['classes'] == tuple(IMAGENET_CATEGORIES)
    assert len(val) == len(records) == imagenet['num_val'] == 8
    for i, rec in enumerate(records):
        info = val.get_data_info(i)
        assert info['img_path'] == osp.join(root, 'val', rec['path'])
        assert info['gt_label'] == rec['label']
        _check_image(info['img_path'], rec['size'])
    for i in (0, len(records) - 1):
        _check_packed(
            val, i, records[i]['size'], expected_label=records[i]['label'])

    # training: UniCL's label source (its data_root is the one to set)
    ds_cfg = copy.deepcopy(cfg.train_dataloader.dataset)
    ds_cfg.label_sources[0].data_root = root
    train = DATASETS.build(ds_cfg)
    records = imagenet['images']['train']
    # merged by name: 'crane' names classes 134 and 517
    assert len(train.metainfo['classes']) == 999
    assert len(train) == len(records) == 16
    for i, rec in enumerate(records):
        info = train.get_data_info(i)
        assert info['img_path'] == osp.join(root, 'train', rec['path'])
        assert rec['path'].split('/')[0] == imagenet['wnids'][rec['label']]
        assert info['class_name'] == IMAGENET_CATEGORIES[rec['label']]
        assert info['gt_label'] == rec['label']  # classes 0-15 keep theirs
        _check_image(info['img_path'], rec['size'])
    for i in (0, len(records) - 1):
        sample = _check_packed(
            train, i, records[i]['size'], expected_label=records[i]['label'])
        name = IMAGENET_CATEGORIES[records[i]['label']]
        assert name in sample.text
