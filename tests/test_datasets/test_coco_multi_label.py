# Copyright (c) mmovl contributors. All rights reserved.
import json
import os.path as osp

import pytest

from mmovl.datasets import (LABELS, SEEN_LABELS, UNSEEN_LABELS,
                            CocoMultiLabelDataset)


def _build(root, split='val', **kwargs):
    return CocoMultiLabelDataset(
        data_root=root,
        ann_file=f'annotations/instances_{split}.json',
        data_prefix=split,
        unseen_file='annotations/unseen_labels.txt',
        **kwargs)


def _brute_force_labels(root, split):
    with open(osp.join(root, 'annotations', f'instances_{split}.json')) as f:
        ann = json.load(f)
    names = {c['id']: c['name'] for c in ann['categories']}
    labels = {img['id']: set() for img in ann['images']}
    for a in ann['annotations']:
        labels[a['image_id']].add(names[a['category_id']])
    return ann, labels


@pytest.mark.parametrize('label_split,vocab', [('all', LABELS),
                                               ('seen', SEEN_LABELS),
                                               ('unseen', UNSEEN_LABELS)])
def test_vocabulary_and_labels(tiny_world, label_split, vocab):
    ds = _build(tiny_world, label_split=label_split)
    assert ds.metainfo['classes'] == tuple(vocab)
    assert set(ds.metainfo['unseen_classes']) == set(vocab) & set(
        UNSEEN_LABELS)
    assert set(ds.metainfo['seen_classes']) == set(vocab) - set(
        UNSEEN_LABELS)
    ann, labels = _brute_force_labels(tiny_world, 'val')
    assert len(ds) == len(ann['images'])
    for i, img in enumerate(ann['images']):
        info = ds.get_data_info(i)
        assert info['img_path'] == osp.join(tiny_world, 'val',
                                            img['file_name'])
        assert {vocab[j] for j in info['gt_label']
                } == labels[img['id']] & set(vocab)
        assert ds.get_cat_ids(i) == sorted(info['gt_label'])


def test_class_frequencies_from_training_file(tiny_world):
    ds = _build(tiny_world, label_split='all',
                frequency_ann_file='annotations/instances_train_lt.json')
    _, labels = _brute_force_labels(tiny_world, 'train_lt')
    expected = [sum(name in s for s in labels.values()) for name in LABELS]
    assert ds.metainfo['class_frequencies'] == expected
    # without a frequency file there are no (meaningless) frequencies
    assert 'class_frequencies' not in _build(tiny_world).metainfo


def test_filter_empty(tiny_world):
    ds = _build(tiny_world, label_split='unseen', filter_empty=True)
    _, labels = _brute_force_labels(tiny_world, 'val')
    assert len(ds) == sum(bool(s & set(UNSEEN_LABELS))
                          for s in labels.values())
    assert all(ds.get_data_info(i)['gt_label'] for i in range(len(ds)))


def test_pipeline_loads_images(tiny_world):
    ds = _build(tiny_world, pipeline=[
        dict(type='LoadImageFromFile'), dict(type='PackInputs')])
    item = ds[0]
    assert tuple(item['inputs'].shape) == (3, 64, 64)
    assert item['data_samples'].gt_label.tolist() == ds.get_cat_ids(0)


def test_bad_input_errors(tiny_world, tmp_path):
    with pytest.raises(ValueError, match='label_split'):
        _build(tiny_world, label_split='novel')
    with pytest.raises(ValueError, match='unseen_file'):
        CocoMultiLabelDataset(
            data_root=tiny_world, ann_file='annotations/instances_val.json',
            label_split='seen')
    bad_unseen = tmp_path / 'unseen.txt'
    bad_unseen.write_text('red circle\npink elephant\n')
    with pytest.raises(ValueError, match='pink elephant'):
        CocoMultiLabelDataset(
            data_root=tiny_world, ann_file='annotations/instances_val.json',
            unseen_file=str(bad_unseen), label_split='unseen')
    dup = tmp_path / 'dup.txt'
    dup.write_text('red circle\nred circle\n')
    with pytest.raises(ValueError, match='duplicate'):
        CocoMultiLabelDataset(
            data_root=tiny_world, ann_file='annotations/instances_val.json',
            unseen_file=str(dup), label_split='unseen')
    not_coco = tmp_path / 'not_coco.json'
    not_coco.write_text(json.dumps({'images': [], 'annotations': []}))
    with pytest.raises(ValueError, match=r'not_coco\.json.*categories'):
        CocoMultiLabelDataset(ann_file=str(not_coco))
    with pytest.raises(FileNotFoundError, match='missing.txt'):
        CocoMultiLabelDataset(
            data_root=tiny_world, ann_file='annotations/instances_val.json',
            unseen_file='missing.txt', label_split='seen')
