# Copyright (c) mmovl contributors. All rights reserved.
import json
import math
import os
import os.path as osp

import numpy as np
import pytest
import torch
from PIL import Image

import mmovl  # noqa: F401  (registers the components)
from mmovl.datasets.coco_object_crops import CocoObjectCrops
from mmovl.datasets.toy_world import LABELS
from mmovl.datasets.unicl_dataset import (CocoCaptionPairs, CsvCaptionPairs,
                                          UniCLDataset)
from mmovl.models.teachers.templates import ENSEMBLE_TEMPLATES
from mmpretrain.registry import DATASETS
from mmpretrain.structures import DataSample

FOLDER_CLASSES = {'red circle': 3, 'zebra': 2}  # name -> number of images


def _png(path, seed, size=(12, 10)):
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(
        path)


@pytest.fixture
def folder(tmp_path):
    """An ImageNet-style folder: one sub-folder of PNGs per class."""
    root = tmp_path / 'folder'
    for c, (name, n) in enumerate(FOLDER_CLASSES.items()):
        os.makedirs(root / name)
        for i in range(n):
            _png(root / name / f'{i}.png', seed=10 * c + i)
    return str(root)


@pytest.fixture
def captions(tmp_path):
    """A COCO captions file over three images (one has two captions)."""
    os.makedirs(tmp_path / 'cap_images')
    images = [dict(id=7 + i, file_name=f'{i}.png') for i in range(3)]
    for i, img in enumerate(images):
        _png(tmp_path / 'cap_images' / img['file_name'], seed=100 + i)
    anns = [
        dict(id=1, image_id=7, caption='a red circle.'),
        dict(id=2, image_id=8, caption='  two zebras\n'),
        dict(id=3, image_id=7, caption='a circle, red.'),
        dict(id=4, image_id=9, caption='a red circle.'),  # same text
    ]
    path = tmp_path / 'captions.json'
    path.write_text(json.dumps(dict(images=images, annotations=anns)))
    return str(path)


def _coco(root, split):
    with open(osp.join(root, 'annotations', f'instances_{split}.json')) as f:
        return json.load(f)


def _crops(root, **kwargs):
    return dict(
        type='CocoObjectCrops',
        data_root=root,
        ann_file='annotations/instances_val.json',
        data_prefix='val',
        **kwargs)


def _caption_source(path):
    return dict(
        type='CocoCaptionPairs',
        ann_file=path,
        data_prefix=osp.join(osp.dirname(path), 'cap_images'))


def test_registered():
    for name, cls in [('UniCLDataset', UniCLDataset),
                      ('CocoObjectCrops', CocoObjectCrops),
                      ('CocoCaptionPairs', CocoCaptionPairs),
                      ('CsvCaptionPairs', CsvCaptionPairs)]:
        assert DATASETS.get(name) is cls


def test_object_crops_one_sample_per_box(tiny_world):
    ann = _coco(tiny_world, 'val')
    names = {c['id']: c['name'] for c in ann['categories']}
    files = {img['id']: img['file_name'] for img in ann['images']}
    sides = sorted(min(a['bbox'][2:]) for a in ann['annotations'])
    min_size = sides[len(sides) // 2]  # drops about half of the boxes
    kept = [a for a in ann['annotations'] if min(a['bbox'][2:]) >= min_size]
    assert 0 < len(kept) < len(ann['annotations'])

    ds = DATASETS.build(_crops(tiny_world, min_size=min_size))
    assert ds.metainfo['classes'] == LABELS
    assert len(ds) == len(kept)
    for i, a in enumerate(kept):
        info = ds.get_data_info(i)
        x, y, w, h = a['bbox']
        assert info['crop_bbox'] == pytest.approx([x, y, x + w, y + h])
        assert LABELS[info['gt_label']] == names[a['category_id']]
        assert info['img_path'] == osp.join(tiny_world, 'val',
                                            files[a['image_id']])
    # The default min_size keeps every toy-world box.
    assert len(DATASETS.build(_crops(tiny_world))) == len(ann['annotations'])


def test_object_crops_skip_crowd_and_sort_categories(tmp_path):
    ann = dict(
        images=[dict(id=1, file_name='a.png')],
        categories=[dict(id=9, name='zebra'),
                    dict(id=2, name='cat')],
        annotations=[
            dict(id=1, image_id=1, category_id=9, bbox=[0, 0, 20, 20]),
            dict(id=2, image_id=1, category_id=2, bbox=[0, 0, 20, 20],
                 iscrowd=1),
            dict(id=3, image_id=1, category_id=2, bbox=[5, 5, 30, 2]),
            dict(id=4, image_id=1, category_id=2, bbox=[1, 2, 10, 10]),
        ])
    (tmp_path / 'inst.json').write_text(json.dumps(ann))
    ds = CocoObjectCrops(ann_file=str(tmp_path / 'inst.json'), min_size=4)
    assert ds.metainfo['classes'] == ('cat', 'zebra')  # sorted by id
    assert [d['ann_id'] for d in ds] == [1, 4]
    assert [d['gt_label'] for d in ds] == [1, 0]
    assert ds.get_data_info(1)['crop_bbox'] == [1, 2, 11, 12]


def test_vocabulary_merged_by_name(folder, tiny_world):
    ds = UniCLDataset(label_sources=[
        dict(type='CustomDataset', data_prefix=folder),
        _crops(tiny_world)
    ])
    expected = ['red circle', 'zebra'
                ] + [n for n in LABELS if n != 'red circle']
    assert ds.metainfo['classes'] == tuple(expected)
    assert ds.metainfo['num_text_pairs'] == 0

    ann = _coco(tiny_world, 'val')
    num_folder = sum(FOLDER_CLASSES.values())
    assert len(ds) == num_folder + len(ann['annotations'])
    names = {c['id']: c['name'] for c in ann['categories']}
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        assert set(info) == {'img_path', 'gt_label', 'class_name',
                             'sample_idx'} | ({'crop_bbox'}
                                              if i >= num_folder else set())
        assert isinstance(info['gt_label'], int)
        assert expected[info['gt_label']] == info['class_name']
        if i < num_folder:  # the folder names the class
            assert info['class_name'] == osp.basename(
                osp.dirname(info['img_path']))
        else:
            a = ann['annotations'][i - num_folder]
            assert info['class_name'] == names[a['category_id']]
    # 'red circle' has one id whichever source a sample came from.
    red = {
        ds.get_data_info(i)['gt_label']
        for i in range(len(ds))
        if ds.get_data_info(i)['class_name'] == 'red circle'
    }
    assert red == {0}
    assert sum(
        ds.get_data_info(i)['class_name'] == 'red circle'
        for i in range(num_folder, len(ds))) > 0  # both sources have one


def test_caption_pairs_get_unique_labels(folder, captions):
    ds = UniCLDataset(
        label_sources=[dict(type='CustomDataset', data_prefix=folder)],
        text_sources=[_caption_source(captions)])
    with open(captions) as f:
        ann = json.load(f)
    files = {img['id']: img['file_name'] for img in ann['images']}
    num_classes = len(FOLDER_CLASSES)
    num_folder = sum(FOLDER_CLASSES.values())
    assert ds.metainfo['classes'] == tuple(FOLDER_CLASSES)
    assert ds.metainfo['num_text_pairs'] == len(ann['annotations'])
    assert len(ds) == num_folder + len(ann['annotations'])
    text_infos = [ds.get_data_info(i) for i in range(num_folder, len(ds))]
    labels = [info['gt_label'] for info in text_infos]
    # Unique even for the two identical captions, and never a class id.
    assert labels == list(
        range(num_classes, num_classes + len(ann['annotations'])))
    for info, a in zip(text_infos, ann['annotations']):
        assert info['text'] == a['caption'].strip()
        assert 'class_name' not in info
        assert info['img_path'] == osp.join(
            osp.dirname(captions), 'cap_images', files[a['image_id']])


def test_repeats(folder, captions):
    ds = UniCLDataset(
        label_sources=[dict(type='CustomDataset', data_prefix=folder)],
        text_sources=[_caption_source(captions)],
        label_repeat=2,
        text_repeat=3)
    num_folder = sum(FOLDER_CLASSES.values())
    assert len(ds) == 2 * num_folder + 3 * 4
    text_labels = [
        ds.get_data_info(i)['gt_label'] for i in range(2 * num_folder, len(ds))
    ]
    assert text_labels == [2, 3, 4, 5] * 3  # a repeat keeps its label


def test_sources_data_root_and_instances(tiny_world, captions):
    crops = CocoObjectCrops(
        data_root=tiny_world,
        ann_file='annotations/instances_val.json',
        data_prefix='val')
    ds = UniCLDataset(
        data_root=tiny_world,
        label_sources=[crops],
        text_sources=[
            dict(
                type='CocoCaptionPairs',
                ann_file='annotations/captions_val.json',
                data_prefix='val'),
            _caption_source(captions),  # absolute paths ignore data_root
        ])
    with open(osp.join(tiny_world, 'annotations', 'captions_val.json')) as f:
        num_toy = len(json.load(f)['annotations'])
    assert ds.metainfo['classes'] == LABELS
    assert ds.metainfo['num_text_pairs'] == num_toy + 4
    last = ds.get_data_info(len(ds) - 1)
    assert last['gt_label'] == len(LABELS) + num_toy + 3
    assert last['text'] == 'a red circle.'
    first_text = ds.get_data_info(len(crops))
    assert first_text['img_path'] == osp.join(tiny_world, 'val',
                                              '000000.png')


def test_csv_caption_pairs(tmp_path):
    (tmp_path / 'pairs.tsv').write_text(
        'filepath\ttitle\textra\n0.png\ta cat.\tx\nsub/1.png\t a dog \ty\n')
    ds = CsvCaptionPairs(ann_file=str(tmp_path / 'pairs.tsv'),
                         data_prefix='imgs')
    assert [(d['img_path'], d['text']) for d in ds] == [
        ('imgs/0.png', 'a cat.'), ('imgs/sub/1.png', 'a dog')
    ]
    (tmp_path / 'pairs.csv').write_text('image,caption\n0.png,"a, cat."\n')
    ds = CsvCaptionPairs(
        ann_file=str(tmp_path / 'pairs.csv'),
        img_key='image',
        caption_key='caption',
        sep=',')
    assert ds.get_data_info(0)['text'] == 'a, cat.'
    with pytest.raises(ValueError, match=r"pairs.csv.*\['filepath', 'title'"):
        CsvCaptionPairs(ann_file=str(tmp_path / 'pairs.csv'), sep=',')


def test_end_to_end_pipeline(folder, captions, tiny_world):
    pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='CropBox', scale_range=(1.0, 1.0)),
        dict(type='Resize', scale=(16, 16)),
        dict(type='PromptText'),
        dict(type='PackInputs', algorithm_keys=('text', )),
    ]
    ds = UniCLDataset(
        label_sources=[
            dict(type='CustomDataset', data_prefix=folder),
            _crops(tiny_world)
        ],
        text_sources=[_caption_source(captions)],
        pipeline=pipeline)
    classes = ds.metainfo['classes']
    num_folder = sum(FOLDER_CLASSES.values())
    for i in (0, num_folder, len(ds) - 1):
        info = ds.get_data_info(i)
        out = ds[i]
        sample = out['data_samples']
        assert isinstance(sample, DataSample)
        assert out['inputs'].shape == (3, 16, 16)
        assert sample.gt_label.tolist() == [info['gt_label']]
        if 'text' in info:
            assert sample.text == info['text']
        else:
            assert sample.text in {
                t.format(classes[info['gt_label']])
                for t in ENSEMBLE_TEMPLATES
            }

    # Without the resize, a scale-1 crop is exactly the box's pixels.
    ds = UniCLDataset(
        label_sources=[_crops(tiny_world)], pipeline=pipeline[:2])
    info = ds.get_data_info(0)
    x1, y1, x2, y2 = info['crop_bbox']
    bgr = np.asarray(Image.open(info['img_path']).convert('RGB'))[..., ::-1]
    expected = bgr[math.floor(y1):math.ceil(y2), math.floor(x1):math.ceil(x2)]
    out = ds[0]
    np.testing.assert_array_equal(out['img'], expected)
    assert out['img_shape'] == expected.shape[:2]
    assert out['ori_shape'] == bgr.shape[:2]


def test_positive_sets(folder, captions):
    """Label samples of one class share a label, pairs never do."""
    ds = UniCLDataset(
        label_sources=[dict(type='CustomDataset', data_prefix=folder)],
        text_sources=[_caption_source(captions)])
    labels = torch.tensor([ds.get_data_info(i)['gt_label']
                           for i in range(len(ds))])
    positives = (labels[:, None] == labels[None]).sum(1) - 1
    num_folder = sum(FOLDER_CLASSES.values())
    assert positives[num_folder:].tolist() == [0] * 4
    assert positives[:num_folder].tolist() == [2, 2, 2, 1, 1]


def _write(path, obj):
    path.write_text(json.dumps(obj))
    return str(path)


def test_errors(tmp_path, folder, captions):
    bad = _write(tmp_path / 'nocap.json', dict(
        images=[dict(id=1, file_name='a.png')],
        annotations=[dict(id=5, image_id=1, text='oops')]))
    with pytest.raises(ValueError, match=r'nocap.json.*annotation 5.*caption'):
        UniCLDataset(text_sources=[dict(type='CocoCaptionPairs',
                                        ann_file=bad)])
    bad = _write(tmp_path / 'noimg.json', dict(
        images=[], annotations=[dict(id=5, image_id=3, caption='x')]))
    with pytest.raises(ValueError, match=r'noimg.json.*image_id 3'):
        CocoCaptionPairs(ann_file=bad)
    with pytest.raises(ValueError, match=r'nocat.json.*"categories"'):
        CocoObjectCrops(ann_file=_write(tmp_path / 'nocat.json', dict(
            images=[], annotations=[])))

    # A caption source has no classes: it cannot be a label source.
    with pytest.raises(ValueError,
                       match=r'CocoCaptionPairs.*captions.json.*classes'):
        UniCLDataset(label_sources=[_caption_source(captions)])

    # mmpretrain's own annotation format, but multi-label / float labels.
    for name, label in [('multi', [0, 1]), ('float', 1.0)]:
        ann = _write(tmp_path / f'{name}.json', dict(
            metainfo=dict(classes=['a', 'b']),
            data_list=[dict(img_path='x.png', gt_label=label)]))
        with pytest.raises(TypeError, match=rf'{name}.json.*gt_label'):
            UniCLDataset(label_sources=[dict(type='BaseDataset',
                                             ann_file=ann)])
    ann = _write(tmp_path / 'range.json', dict(
        metainfo=dict(classes=['a', 'b']),
        data_list=[dict(img_path='x.png', gt_label=2)]))
    with pytest.raises(ValueError, match=r'range.json.*outside its 2'):
        UniCLDataset(label_sources=[dict(type='BaseDataset', ann_file=ann)])

    with pytest.raises(ValueError, match='at least one'):
        UniCLDataset()
    with pytest.raises(ValueError, match='text_repeat'):
        UniCLDataset(text_sources=[_caption_source(captions)], text_repeat=0)
    with pytest.raises(ValueError, match='classes'):
        UniCLDataset(
            label_sources=[dict(type='CustomDataset', data_prefix=folder)],
            classes=['a'])
