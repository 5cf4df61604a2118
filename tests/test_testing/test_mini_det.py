# Copyright (c) mmovl contributors. All rights reserved.
"""The miniature COCO, VOC and LVIS v1 (``mmovl.testing.mini_det``), read by
the data sets of the real configs exactly as those configs build them (only
``data_root`` and, for training, the pipeline changed). Expected values come
from the generator's plan and from vocabularies written out here or taken
from mmdet, never from the converters' output."""
import copy
import json
import os
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from PIL import Image

import mmovl  # noqa: F401
from mmovl.datasets.coco_ov import COCO_OV_BASE_CLASSES, COCO_OV_NOVEL_CLASSES
from mmovl.testing.mini_det import (class_colour, make_coco, make_lvis,
                                    make_voc, plan_coco, plan_lvis, plan_voc)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = osp.join(REPO, 'configs')

# COCO's unused category ids.
COCO_ID_GAPS = {12, 26, 29, 30, 45, 66, 68, 69, 71, 83}
VOC_READABLE = ('aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus',
                'car', 'cat', 'chair', 'cow', 'dining table', 'dog', 'horse',
                'motorbike', 'person', 'potted plant', 'sheep', 'sofa',
                'train', 'tv monitor')
VOC_IDS = ('aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car',
           'cat', 'chair', 'cow', 'diningtable', 'dog', 'horse', 'motorbike',
           'person', 'pottedplant', 'sheep', 'sofa', 'train', 'tvmonitor')
# The miniature LVIS vocabulary by frequency, in category-id order.
LVIS_BASE = ('aerosol_can', 'airplane', 'alligator', 'ambulance', 'apple',
             'bagel', 'banana', 'bear')
LVIS_RARE = ('applesauce', 'apricot', 'armoire', 'barbell')
LVIS_ALL = ('aerosol_can', 'airplane', 'alligator', 'ambulance', 'apple',
            'applesauce', 'apricot', 'armoire', 'bagel', 'banana', 'barbell',
            'bear')


@pytest.fixture(scope='module')
def mini_root(tmp_path_factory):
    return str(tmp_path_factory.mktemp('mini_det'))


@pytest.fixture(scope='module')
def coco(mini_root):
    root = osp.join(mini_root, 'coco')
    return root, make_coco(root), plan_coco()


@pytest.fixture(scope='module')
def voc(mini_root):
    root = osp.join(mini_root, 'voc')
    return root, make_voc(root), plan_voc()


@pytest.fixture(scope='module')
def lvis(mini_root):
    root = osp.join(mini_root, 'lvis_v1')
    return root, make_lvis(root), plan_lvis()


def _load(path):
    with open(path, encoding='utf-8') as f:
        return json.load(f)


def _build(ds_cfg, scope, **kwargs):
    """Build a config's data set dict with ``kwargs`` changed."""
    init_default_scope(scope)
    ds_cfg = copy.deepcopy(ds_cfg)
    ds_cfg.update(kwargs)
    if scope == 'mmdet':
        from mmdet.registry import DATASETS
    else:
        from mmpretrain.registry import DATASETS
    return DATASETS.build(ds_cfg)


def _infos(ds):
    return [ds.get_data_info(i) for i in range(len(ds))]


def _det_boxes(info, classes):
    return [(classes[x['bbox_label']], x['bbox']) for x in info['instances']]


def _expected_boxes(image, keep):
    return [(o['name'], list(o['box'])) for o in image['objects']
            if o['name'] in keep]


def _assert_boxes_equal(got, expected):
    assert [n for n, _ in got] == [n for n, _ in expected]
    for (_, a), (_, b) in zip(got, expected):
        np.testing.assert_allclose(a, b, atol=1e-6)


def _check_image(path, width, height, box=None, name=None):
    """The JPEG exists with the planned size; the last-drawn box (never
    covered) has its class's colour in the middle."""
    with Image.open(path) as img:
        assert img.size == (width, height)
    if box is not None:
        img = cv2.imread(path)
        cx, cy = int((box[0] + box[2]) / 2), int((box[1] + box[3]) / 2)
        np.testing.assert_allclose(img[cy, cx], class_colour(name), atol=24)


def _gt_as_predictions(infos, with_masks=False):
    from mmdet.structures.mask import PolygonMasks
    samples = []
    for info in infos:
        insts, h, w = info['instances'], info['height'], info['width']
        pred = dict(
            bboxes=torch.tensor([x['bbox'] for x in insts],
                                dtype=torch.float32).reshape(-1, 4),
            scores=torch.ones(len(insts)),
            labels=torch.tensor([x['bbox_label'] for x in insts],
                                dtype=torch.long))
        if with_masks:
            polygons = [[np.array(p) for p in x['mask']] for x in insts]
            pred['masks'] = torch.from_numpy(
                PolygonMasks(polygons, h, w).to_ndarray().astype(bool))
        samples.append(
            dict(img_id=info['img_id'], ori_shape=(h, w),
                 pred_instances=pred))
    return samples


# -- COCO ---------------------------------------------------------------------
def test_coco_official_files(coco):
    root, summary, plan = coco
    from mmdet.datasets import CocoDataset
    names = CocoDataset.METAINFO['classes']
    assert summary['num_train'] == 16 and summary['num_val'] == 8
    for split in ('train', 'val'):
        data = _load(
            osp.join(root, 'annotations', f'instances_{split}2017.json'))
        assert set(data) == {'info', 'licenses', 'images', 'annotations',
                             'categories'}
        cats = data['categories']
        assert [c['name'] for c in cats] == list(names)
        assert [c['id'] for c in cats] == [
            i for i in range(1, 91) if i not in COCO_ID_GAPS
        ]
        sup = {c['name']: c['supercategory'] for c in cats}
        assert (sup['person'], sup['tv'], sup['potted plant'],
                sup['toothbrush']) == ('person', 'electronic', 'furniture',
                                       'indoor')
        assert [im['id'] for im in data['images']] == [
            im['id'] for im in plan[split]
        ]
        for im, planned in zip(data['images'], plan[split]):
            assert im['file_name'] == f'{im["id"]:012d}.jpg'
            assert im['coco_url'].endswith(f'/{split}2017/{im["file_name"]}')
            objs = planned['objects']
            _check_image(
                osp.join(root, f'{split}2017', im['file_name']),
                planned['width'], planned['height'],
                *((objs[-1]['box'], objs[-1]['name']) if objs else ()))
        ann = data['annotations'][0]
        x, y, w, h = ann['bbox']
        assert ann['iscrowd'] == 0 and ann['area'] == pytest.approx(w * h)
        assert ann['segmentation'] == [[x, y, x + w, y, x + w, y + h, x,
                                        y + h]]
    ann_ids = [a['id'] for s in ('train', 'val') for a in _load(
        osp.join(root, 'annotations', f'instances_{s}2017.json'))
               ['annotations']]
    assert len(set(ann_ids)) == len(ann_ids) == summary['num_annotations']


def test_coco_plan_covers_the_splits():
    plan = plan_coco()
    assert plan == plan_coco()  # deterministic
    assert plan != plan_coco(seed=1)
    base, novel = set(COCO_OV_BASE_CLASSES), set(COCO_OV_NOVEL_CLASSES)
    for split in ('train', 'val'):
        kinds = [(bool(names & base), bool(names & novel))
                 for names in ({o['name'] for o in im['objects']}
                               for im in plan[split])]
        assert (True, True) in kinds  # base and novel in one image
        assert (False, True) in kinds  # novel only
        assert (False, False) in kinds  # neither (or no box)
    # Uneven class frequencies in the long-tailed training list.
    counts = _lt_counts(plan)
    assert len(set(c for c in counts if c)) >= 3


def _lt_counts(plan):
    from mmdet.datasets import CocoDataset
    names = CocoDataset.METAINFO['classes']
    by_id = {im['id']: im for im in plan['train']}
    return [
        sum(any(o['name'] == n for o in by_id[i]['objects'])
            for i in plan['lt_img_ids']) for n in names
    ]


def test_coco_lt_config_reads_the_lists(coco):
    root, _, plan = coco
    from mmdet.datasets import CocoDataset
    names = CocoDataset.METAINFO['classes']
    cfg = Config.fromfile(osp.join(CONFIGS, 'cprfl',
                                   'cprfl_r101_80e_coco_lt.py'))
    train = _build(cfg.train_dataloader.dataset, 'mmpretrain',
                   data_root=root)
    test = _build(cfg.test_dataloader.dataset, 'mmpretrain', data_root=root)
    assert train.metainfo['classes'] == test.metainfo['classes'] == names
    by_id = {im['id']: im for im in plan['train']}
    expected = [(i, osp.join(root, 'train2017', by_id[i]['file_name']),
                 sorted({names.index(o['name'])
                         for o in by_id[i]['objects']}))
                for i in plan['lt_img_ids']]
    assert [(x['img_id'], x['img_path'], x['gt_label'])
            for x in _infos(train)] == expected
    assert [(x['img_id'], x['img_path'], x['gt_label'])
            for x in _infos(test)] == [
                (im['id'], osp.join(root, 'val2017', im['file_name']),
                 sorted({names.index(o['name']) for o in im['objects']}))
                for im in plan['val']
            ]
    assert test.metainfo['class_frequencies'] == _lt_counts(plan)
    item = test[0]
    assert tuple(item['inputs'].shape) == (3, 448, 448)


def test_coco_ov_config_reads_the_split(coco):
    root, _, plan = coco
    cfg = Config.fromfile(
        osp.join(CONFIGS, 'vild', 'vild_r50_fpn_32xb8_180k_coco_ov_48_17.py'))
    # Training: the pipeline without the CLIP proposal store (ViLD-text's).
    train = _build(cfg.train_dataloader.dataset, 'mmdet', data_root=root,
                   pipeline=cfg.train_pipeline_text_only)
    val = _build(cfg.val_dataloader.dataset, 'mmdet', data_root=root)
    assert train.metainfo['classes'] == COCO_OV_BASE_CLASSES
    assert set(val.metainfo['classes']) == set(COCO_OV_BASE_CLASSES +
                                               COCO_OV_NOVEL_CLASSES)
    for ds, split, keep in ((train, 'train', set(COCO_OV_BASE_CLASSES)),
                            (val, 'val', set(COCO_OV_BASE_CLASSES +
                                             COCO_OV_NOVEL_CLASSES))):
        expected = {
            im['id']: _expected_boxes(im, keep)
            for im in plan[split] if _expected_boxes(im, keep)
        }
        infos = _infos(ds)
        assert [x['img_id'] for x in infos] == list(expected)
        for info in infos:
            _assert_boxes_equal(
                _det_boxes(info, ds.metainfo['classes']),
                expected[info['img_id']])
            assert info['img_path'] == osp.join(
                root, f'{split}2017', f'{info["img_id"]:012d}.jpg')
        sample = ds[0]['data_samples']
        assert len(sample.gt_instances) == len(infos[0]['instances'])
        if ds is train:  # polygons loaded as masks
            assert len(sample.gt_instances.masks) == len(infos[0]['instances'])

    # OVCocoMetric on the ground truth as predictions: base and novel AP 1.
    from mmdet.registry import METRICS
    metric_cfg = copy.deepcopy(cfg.val_evaluator)
    metric_cfg['ann_file'] = osp.join(
        root, 'annotations', osp.basename(metric_cfg['ann_file']))
    metric = METRICS.build(metric_cfg)
    metric.dataset_meta = val.metainfo
    metric.process({}, _gt_as_predictions(_infos(val)))
    res = metric.evaluate(len(val))
    assert res['coco/base_ap'] == pytest.approx(1.0)
    assert res['coco/novel_ap'] == pytest.approx(1.0)
    # Small, medium and large boxes: every area group is defined.
    for key in ('mAP', 'mAP_s', 'mAP_m', 'mAP_l'):
        assert res[f'coco/bbox_{key}'] == pytest.approx(1.0), key


# -- VOC ----------------------------------------------------------------------
def test_voc_devkit_layout(voc):
    root, summary, plan = voc
    import xml.etree.ElementTree as ET
    voc12 = osp.join(root, 'VOC2012')
    main = osp.join(voc12, 'ImageSets', 'Main')
    with open(osp.join(main, 'trainval.txt')) as f:
        trainval = f.read().split()
    assert trainval == sorted(im['id'] for im in plan['trainval'])
    with open(osp.join(main, 'train.txt')) as f:
        train = f.read().split()
    with open(osp.join(main, 'val.txt')) as f:
        val = f.read().split()
    assert sorted(train + val) == trainval and not set(train) & set(val)
    with open(osp.join(root, 'VOC2007', 'ImageSets', 'Main',
                       'test.txt')) as f:
        assert f.read().split() == [im['id'] for im in plan['test']]
    assert len(os.listdir(main)) == 3 + 3 * 20
    for im in plan['trainval'][:4]:
        node = ET.parse(osp.join(voc12, 'Annotations',
                                 f'{im["id"]}.xml')).getroot()
        assert node.findtext('filename') == f'{im["id"]}.jpg'
        assert int(node.findtext('size/width')) == im['width']
        objs = node.findall('object')
        assert [o.findtext('name') for o in objs] == [
            o['name'] for o in im['objects']
        ]
        assert [int(o.findtext('difficult')) for o in objs] == [
            o['difficult'] for o in im['objects']
        ]
        assert [tuple(int(o.findtext(f'bndbox/{t}'))
                      for t in ('xmin', 'ymin', 'xmax', 'ymax'))
                for o in objs] == [o['bndbox'] for o in im['objects']]
        last = im['objects'][-1]
        xmin, ymin, xmax, ymax = last['bndbox']
        _check_image(osp.join(voc12, 'JPEGImages', f'{im["id"]}.jpg'),
                     im['width'], im['height'],
                     (xmin - 1, ymin - 1, xmax, ymax), last['name'])
    # The run-together names, and a difficult object that adds a label.
    names = {o['name'] for im in plan['trainval'] for o in im['objects']}
    assert {'pottedplant', 'diningtable', 'tvmonitor'} <= names
    assert any(
        o['difficult'] and not any(p['name'] == o['name']
                                   and not p['difficult']
                                   for p in im['objects'])
        for im in plan['trainval'] for o in im['objects'])
    assert summary['num_lt_train'] == len(plan['lt_ids'])


def test_voc_lt_config_reads_the_lists(voc):
    root, _, plan = voc
    cfg = Config.fromfile(osp.join(CONFIGS, 'cprfl',
                                   'cprfl_r101_80e_voc_lt.py'))
    train = _build(cfg.train_dataloader.dataset, 'mmpretrain',
                   data_root=root)
    test = _build(cfg.test_dataloader.dataset, 'mmpretrain', data_root=root)
    assert train.metainfo['classes'] == test.metainfo['classes'] == \
        VOC_READABLE

    def labels(im):  # difficult objects count (VOC-LT's protocol)
        return sorted({VOC_IDS.index(o['name']) for o in im['objects']})

    by_id = {im['id']: im for im in plan['trainval']}
    assert [(x['img_id'], x['img_path'], x['gt_label'])
            for x in _infos(train)] == [
                (int(i.replace('_', '')),
                 osp.join(root, 'VOC2012', 'JPEGImages', f'{i}.jpg'),
                 labels(by_id[i])) for i in plan['lt_ids']
            ]
    assert [(x['img_id'], x['img_path'], x['gt_label'])
            for x in _infos(test)] == [
                (int(im['id']),
                 osp.join(root, 'VOC2007', 'JPEGImages', f'{im["id"]}.jpg'),
                 labels(im)) for im in plan['test']
            ]
    assert test.metainfo['class_frequencies'] == [
        sum(any(o['name'] == n for o in by_id[i]['objects'])
            for i in plan['lt_ids']) for n in VOC_IDS
    ]
    assert tuple(train[0]['inputs'].shape) == (3, 448, 448)


# -- LVIS v1 ------------------------------------------------------------------
def test_lvis_official_files(lvis):
    root, summary, plan = lvis
    assert summary['classes'] == LVIS_ALL
    assert summary['rare'] == LVIS_RARE
    train = _load(osp.join(root, 'annotations', 'lvis_v1_train.json'))
    val = _load(osp.join(root, 'annotations', 'lvis_v1_val.json'))
    for data, split in ((train, 'train'), (val, 'val')):
        cats = data['categories']
        assert [c['name'] for c in cats] == list(LVIS_ALL)
        assert all(
            {'id', 'name', 'synset', 'synonyms', 'def', 'frequency',
             'image_count', 'instance_count'} <= set(c) for c in cats)
        for im, planned in zip(data['images'], plan[split]):
            assert {'coco_url', 'height', 'width', 'neg_category_ids',
                    'not_exhaustive_category_ids'} <= set(im)
            present = {c['id'] for c in cats
                       if any(o['name'] == c['name']
                              for o in planned['objects'])}
            assert not set(im['neg_category_ids']) & present
            assert set(im['not_exhaustive_category_ids']) <= present
            folder, name = im['coco_url'].split('/')[-2:]
            objs = planned['objects']
            _check_image(osp.join(root, folder, name), im['width'],
                         im['height'], objs[-1]['box'], objs[-1]['name'])
    # Counts are the training set's, in both files.
    assert train['categories'] == val['categories']
    counted = {c['name']: c['image_count'] for c in train['categories']}
    assert counted == {
        n: sum(any(o['name'] == n for o in im['objects'])
               for im in plan['train']) for n in LVIS_ALL
    }
    # Validation images from both COCO folders, as LVIS v1's.
    assert {im['coco_url'].split('/')[-2] for im in val['images']} == {
        'train2017', 'val2017'
    }


def test_lvis_config_reads_the_split(lvis):
    root, _, plan = lvis
    cfg = Config.fromfile(
        osp.join(CONFIGS, 'vild', 'vild_r50_fpn_32xb8_180k_lvis_v1_base.py'))
    train_cfg = copy.deepcopy(cfg.train_dataloader.dataset)
    # No repeat-factor sampling by default (the authors' code has none; it
    # is DetPro's); the wrapper stays an option.
    assert 'dataset' not in train_cfg
    # Training: the pipeline without the CLIP proposal store (ViLD-text's).
    train_cfg.update(data_root=root, pipeline=cfg.train_pipeline_text_only)
    train = _build(train_cfg, 'mmdet')
    assert train.metainfo['classes'] == LVIS_BASE
    assert train.metainfo['novel_classes'] == LVIS_RARE
    val = _build(cfg.val_dataloader.dataset, 'mmdet', data_root=root)
    assert val.metainfo['classes'] == LVIS_ALL
    assert val.metainfo['base_classes'] == LVIS_BASE
    for ds, split, keep in ((train, 'train', set(LVIS_BASE)),
                            (val, 'val', set(LVIS_ALL))):
        planned = [im for im in plan[split] if _expected_boxes(im, keep)]
        infos = _infos(ds)
        assert [x['img_id'] for x in infos] == [im['id'] for im in planned]
        for info, im in zip(infos, planned):
            _assert_boxes_equal(_det_boxes(info, ds.metainfo['classes']),
                                _expected_boxes(im, keep))
            assert osp.normpath(info['img_path']) == osp.join(
                root, im['folder'], f'{im["id"]:012d}.jpg')
    # Large-scale jitter with masks runs on a training image.
    np.random.seed(0)
    out = train[0]
    assert max(out['inputs'].shape[-2:]) <= 1024
    gt = out['data_samples'].gt_instances
    assert len(gt.masks) == len(gt) <= len(train.get_data_info(0)['instances'])
    assert len(val[0]['data_samples'].gt_instances) == len(
        val.get_data_info(0)['instances'])
    # The first training image has rare boxes only: dropped.
    assert plan['train'][0]['id'] not in {x['img_id'] for x in
                                          _infos(train)}


def test_lvis_metric_on_ground_truth(lvis):
    """The config's evaluator (box and mask) scores the ground truth 1 in
    every frequency group, and 0 on rare when rare predictions are left
    out: APr, APc and APf are all defined."""
    root, _, _ = lvis
    from mmdet.registry import METRICS
    cfg = Config.fromfile(osp.join(CONFIGS, '_base_', 'datasets',
                                   'lvis_v1_ov.py'))
    val = _build(cfg.val_dataloader.dataset, 'mmdet', data_root=root)
    infos = _infos(val)
    rare = {val.metainfo['classes'].index(n) for n in LVIS_RARE}
    without_rare = [
        dict(x, instances=[i for i in x['instances']
                           if i['bbox_label'] not in rare]) for x in infos
    ]
    for preds, expected in ((infos, 1.0), (without_rare, 0.0)):
        metric_cfg = copy.deepcopy(cfg.val_evaluator)
        metric_cfg['ann_file'] = osp.join(root, 'annotations',
                                          'lvis_v1_val.json')
        metric = METRICS.build(metric_cfg)
        metric.dataset_meta = val.metainfo
        metric.process({}, _gt_as_predictions(preds, with_masks=True))
        res = metric.evaluate(len(val))
        for kind in ('bbox', 'segm'):
            assert (res[f'lvis/{kind}_APr'], res[f'lvis/{kind}_APc'],
                    res[f'lvis/{kind}_APf']) == pytest.approx(
                        (expected, 1.0, 1.0)), kind
        if expected == 1.0:  # every group defined, small boxes included
            assert set(res.values()) == {1.0}, res


def test_lvis_is_deterministic(lvis, tmp_path):
    root, _, _ = lvis
    make_lvis(str(tmp_path))
    for rel in ('annotations/lvis_v1_train.json',
                'annotations/lvis_v1_val.json'):
        with open(osp.join(root, rel), 'rb') as a, open(
                osp.join(str(tmp_path), rel), 'rb') as b:
            assert a.read() == b.read()
    im = plan_lvis()['val'][0]
    rel = osp.join(im['folder'], f'{im["id"]:012d}.jpg')
    with open(osp.join(root, rel), 'rb') as a, open(
            osp.join(str(tmp_path), rel), 'rb') as b:
        assert a.read() == b.read()
    assert plan_voc() == plan_voc() and plan_voc() != plan_voc(seed=3)
