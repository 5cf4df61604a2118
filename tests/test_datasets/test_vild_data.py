# Copyright (c) mmovl contributors. All rights reserved.
"""ViLD's data side: the open-vocabulary splits of LVIS, COCO and the toy
world, their evaluators, the proposal-embedding store and the two pipeline
transforms. Expected values are written out by hand from tiny files the
tests make, or recomputed from the raw json, never from the code tested."""
import copy
import importlib.util
import json
import os
import os.path as osp

import numpy as np
import pytest
import torch
from mmcv.transforms import LoadImageFromFile
from mmdet.datasets.transforms import LoadAnnotations
from mmdet.registry import DATASETS
from mmdet.structures import DetDataSample
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData

from mmovl.datasets import LVISV1OVDataset
from mmovl.datasets.coco_ov import (COCO_OV_BASE_CLASSES, COCO_OV_CLASSES,
                                    COCO_OV_NOVEL_CLASSES)
from mmovl.datasets.toy_world import LABELS, SEEN_LABELS, UNSEEN_LABELS
from mmovl.datasets.transforms import LoadCLIPProposalEmbeds, PackViLDInputs
from mmovl.embeds.proposal_store import (ProposalEmbedStoreError,
                                         make_store_index, write_shard,
                                         write_store_index)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DATASET_CFGS = osp.join(REPO, 'mmovl', 'configs', '_base_', 'datasets')


def _write_json(path, obj):
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        json.dump(obj, f)
    return path


def _box_ann(ann_id, img_id, cat_id, x, y, w, h):
    return dict(id=ann_id, image_id=img_id, category_id=cat_id,
                bbox=[x, y, w, h], area=w * h, iscrowd=0,
                segmentation=[[x, y, x + w, y, x + w, y + h, x, y + h]])


def _labels(info):
    return [inst['bbox_label'] for inst in info['instances']]


# -- LVIS v1 -----------------------------------------------------------------
# Two frequent, one common, two rare categories, in id order as LVIS files.
LVIS_CATS = [('apple', 'f'), ('bear', 'c'), ('cab', 'r'), ('dog', 'f'),
             ('eel', 'r')]
# image id -> category ids of its boxes: image 2 has rare boxes only, image 4
# none.
LVIS_IMAGES = {1: [1, 3], 2: [3, 5], 3: [2, 4, 4], 4: []}


@pytest.fixture
def lvis_json(tmp_path):
    images = [
        dict(id=i, width=64, height=48, neg_category_ids=[],
             not_exhaustive_category_ids=[],
             coco_url=f'http://images.cocodataset.org/train2017/{i:012d}.jpg')
        for i in LVIS_IMAGES
    ]
    anns = []
    for img_id, cats in LVIS_IMAGES.items():
        for k, cat_id in enumerate(cats):
            anns.append(_box_ann(len(anns) + 1, img_id, cat_id, 4 + 10 * k,
                                 5, 8, 6))
    cats = [
        dict(id=i + 1, name=name, frequency=freq, synset=f'{name}.n.01',
             image_count=1, instance_count=1)
        for i, (name, freq) in enumerate(LVIS_CATS)
    ]
    return _write_json(
        str(tmp_path / 'lvis.json'),
        dict(images=images, annotations=anns, categories=cats))


def test_lvis_base_split_drops_rare_annotations(lvis_json):
    ds = LVISV1OVDataset(ann_file=lvis_json, data_prefix=dict(img=''),
                         class_split='base',
                         filter_cfg=dict(filter_empty_gt=True))
    meta = ds.metainfo
    assert meta['classes'] == ('apple', 'bear', 'dog')
    assert meta['base_classes'] == ('apple', 'bear', 'dog')
    assert meta['novel_classes'] == ('cab', 'eel')
    # Image 2 (rare boxes only) and 4 (no box) are filtered; image 1 loses
    # its cab.
    assert [ds.get_data_info(i)['img_id'] for i in range(len(ds))] == [1, 3]
    assert _labels(ds.get_data_info(0)) == [0]  # apple
    assert _labels(ds.get_data_info(1)) == [1, 2, 2]  # bear, dog, dog
    assert ds.get_data_info(1)['instances'][1]['bbox'] == [14, 5, 22, 11]
    assert ds.get_data_info(0)['img_path'] == 'train2017/000000000001.jpg'


def test_lvis_all_split_keeps_every_category(lvis_json):
    ds = LVISV1OVDataset(ann_file=lvis_json, data_prefix=dict(img=''),
                         class_split='all', test_mode=True)
    assert ds.metainfo['classes'] == ('apple', 'bear', 'cab', 'dog', 'eel')
    assert ds.metainfo['novel_classes'] == ('cab', 'eel')
    assert [_labels(ds.get_data_info(i)) for i in range(4)] == [
        [0, 2], [2, 4], [1, 3, 3], []
    ]


def test_lvis_split_errors(lvis_json, tmp_path):
    with pytest.raises(ValueError, match='class_split'):
        LVISV1OVDataset(ann_file=lvis_json, class_split='novel')
    with open(lvis_json) as f:
        bad = json.load(f)
    bad['categories'][1]['frequency'] = 'x'
    path = _write_json(str(tmp_path / 'bad.json'), bad)
    with pytest.raises(ValueError, match=r"bad\.json.*'bear'.*'x'"):
        LVISV1OVDataset(ann_file=path, data_prefix=dict(img=''))


def _gt_as_predictions(ds, keep_label=lambda label: True):
    """Data samples whose predictions are the data set's own boxes."""
    samples = []
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        insts = [x for x in info['instances'] if keep_label(x['bbox_label'])]
        samples.append(dict(
            img_id=info['img_id'],
            ori_shape=(info['height'], info['width']),
            pred_instances=dict(
                bboxes=torch.tensor([x['bbox'] for x in insts],
                                    dtype=torch.float32).reshape(-1, 4),
                scores=torch.ones(len(insts)),
                labels=torch.tensor([x['bbox_label'] for x in insts],
                                    dtype=torch.long))))
    return samples


def test_lvis_metric_reports_rare_ap_from_the_split(lvis_json):
    import lvis.eval
    from mmovl.evaluation import CompatLVISMetric
    lvis_np = lvis.eval.np
    ds = LVISV1OVDataset(ann_file=lvis_json, data_prefix=dict(img=''),
                         class_split='all', test_mode=True)
    assert lvis.eval.np is lvis_np  # the data set patches nothing
    novel = {ds.metainfo['classes'].index(n)
             for n in ds.metainfo['novel_classes']}
    for keep, expected in ((lambda label: True, (1.0, 1.0, 1.0)),
                           (lambda label: label not in novel,
                            (0.0, 1.0, 1.0))):
        metric = CompatLVISMetric(ann_file=lvis_json, metric='bbox')
        metric.dataset_meta = ds.metainfo
        metric.process({}, _gt_as_predictions(ds, keep))
        res = metric.evaluate(len(ds))
        assert (res['lvis/bbox_APr'], res['lvis/bbox_APc'],
                res['lvis/bbox_APf']) == pytest.approx(expected)
        assert lvis.eval.np is lvis_np  # the fix is undone after evaluation


def test_lvis_numpy_compat_is_scoped():
    lvis_eval = pytest.importorskip('lvis.eval')
    from mmovl.evaluation import lvis_numpy_compat
    original = lvis_eval.np
    with lvis_numpy_compat():
        assert lvis_eval.np.float is float
        assert lvis_eval.np.zeros is np.zeros
        with lvis_numpy_compat():  # nested: the outer block restores
            pass
        assert lvis_eval.np.float is float
    assert lvis_eval.np is original
    with pytest.raises(KeyError):
        with lvis_numpy_compat():
            raise KeyError('boom')
    assert lvis_eval.np is original


# -- COCO open vocabulary ----------------------------------------------------
def _load_tool(name):
    path = osp.join(REPO, 'tools', 'dataset_converters', f'{name}.py')
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_coco_ov_class_lists():
    from mmdet.datasets import CocoDataset
    coco = CocoDataset.METAINFO['classes']
    assert len(COCO_OV_BASE_CLASSES) == 48
    assert len(COCO_OV_NOVEL_CLASSES) == 17
    assert not set(COCO_OV_BASE_CLASSES) & set(COCO_OV_NOVEL_CLASSES)
    for names in (COCO_OV_BASE_CLASSES, COCO_OV_NOVEL_CLASSES,
                  COCO_OV_CLASSES):  # COCO id order, as CocoDataset labels
        assert list(names) == [c for c in coco if c in names]
    assert set(COCO_OV_CLASSES) == set(COCO_OV_BASE_CLASSES +
                                       COCO_OV_NOVEL_CLASSES)


def test_coco_ov_lists_match_mmdet_coco2ovd():
    import mmdet
    path = osp.join(osp.dirname(mmdet.__file__), '.mim', 'tools',
                    'dataset_converters', 'coco2ovd.py')
    if not osp.isfile(path):
        pytest.skip('mmdet was installed without its .mim tools')
    spec = importlib.util.spec_from_file_location('coco2ovd', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert tuple(module.base_classes) == COCO_OV_BASE_CLASSES
    assert tuple(module.novel_classes) == COCO_OV_NOVEL_CLASSES


# image id -> category names of its boxes.
COCO_IMAGES = {
    1: ['person', 'airplane'],
    2: ['traffic light'],  # neither base nor novel
    3: ['airplane', 'couch'],  # novel only
    4: ['bicycle', 'traffic light'],
    5: [],
}


@pytest.fixture
def coco_root(tmp_path):
    from mmdet.datasets import CocoDataset
    names = CocoDataset.METAINFO['classes']
    # Listed in id order, as COCO's files are: CocoDataset labels in file
    # order.
    cats = [dict(id=i + 1, name=n, supercategory='x')
            for i, n in enumerate(names)]
    cat_id = {n: i + 1 for i, n in enumerate(names)}
    images = [dict(id=i, file_name=f'{i:012d}.jpg', width=64, height=48)
              for i in COCO_IMAGES]
    anns = []
    for img_id, cat_names in COCO_IMAGES.items():
        for k, name in enumerate(cat_names):
            anns.append(_box_ann(len(anns) + 1, img_id, cat_id[name],
                                 2 + 20 * k, 3, 10, 12))
    root = str(tmp_path / 'coco')
    for split in ('train2017', 'val2017'):
        _write_json(osp.join(root, 'annotations', f'instances_{split}.json'),
                    dict(info={}, images=images, annotations=anns,
                         categories=cats))
    return root


def test_coco_ov_converter_counts(coco_root):
    _load_tool('coco_ov_split').main([coco_root])
    with open(osp.join(coco_root, 'annotations',
                       'instances_train2017_seen_2.json')) as f:
        train = json.load(f)
    with open(osp.join(coco_root, 'annotations',
                       'instances_val2017_all_2.json')) as f:
        val = json.load(f)
    assert len(train['categories']) == 48 and len(val['categories']) == 65
    assert [im['id'] for im in train['images']] == [1, 4]
    # ids: 1 person, 2 airplane | 3 light | 4 airplane, 5 couch | 6 bicycle,
    # 7 light
    assert [a['id'] for a in train['annotations']] == [1, 6]
    assert [im['id'] for im in val['images']] == [1, 3, 4]
    assert [a['id'] for a in val['annotations']] == [1, 2, 4, 5, 6]
    assert train['info'] == {}


def test_coco_ov_config_labels_follow_names(coco_root):
    _load_tool('coco_ov_split').main([coco_root])
    cfg = Config.fromfile(osp.join(DATASET_CFGS, 'coco_ov_48_17.py'))
    init_default_scope('mmdet')
    expected = {  # image id -> names of the boxes each split keeps
        'train': {1: ['person'], 4: ['bicycle']},
        'val': {1: ['person', 'airplane'], 3: ['airplane', 'couch'],
                4: ['bicycle']},
    }
    for split, loader in (('train', cfg.train_dataloader),
                          ('val', cfg.val_dataloader)):
        ds_cfg = copy.deepcopy(loader.dataset)
        ds_cfg.update(data_root=coco_root, pipeline=[])
        ds = DATASETS.build(ds_cfg)
        names = ds.metainfo['classes']
        got = {ds.get_data_info(i)['img_id']:
               [names[x] for x in _labels(ds.get_data_info(i))]
               for i in range(len(ds))}
        assert got == expected[split]
        assert ds.metainfo['novel_classes'] == COCO_OV_NOVEL_CLASSES


# -- The toy world -----------------------------------------------------------
def _toy_cfg():
    return Config.fromfile(osp.join(DATASET_CFGS, 'toy_world_det.py'))


def _build(ds_cfg, root, **kwargs):
    init_default_scope('mmdet')
    ds_cfg = copy.deepcopy(ds_cfg)
    ds_cfg.update(data_root=root, **kwargs)
    return DATASETS.build(ds_cfg)


def test_toy_training_set_has_no_unseen_box(tiny_world):
    ds = _build(_toy_cfg().train_dataloader.dataset, tiny_world)
    assert ds.metainfo['classes'] == SEEN_LABELS
    assert ds.metainfo['novel_classes'] == UNSEEN_LABELS
    with open(osp.join(tiny_world, 'annotations',
                       'instances_train.json')) as f:
        coco = json.load(f)
    name = {c['id']: c['name'] for c in coco['categories']}
    seen_boxes, unseen = {}, 0
    for a in coco['annotations']:
        if name[a['category_id']] in SEEN_LABELS:
            seen_boxes.setdefault(a['image_id'], []).append(
                (name[a['category_id']], a['bbox'][:2]))
        else:
            unseen += 1
    assert unseen > 0  # otherwise the test would show nothing
    # Kept: exactly the images with a seen box, each with all its seen
    # boxes (labelled by name) and nothing else.
    got = {}
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        got[info['img_id']] = [(SEEN_LABELS[x['bbox_label']],
                                [round(v, 2) for v in x['bbox'][:2]])
                               for x in info['instances']]
    assert got == seen_boxes


def test_toy_test_set_and_ov_metric(tiny_world):
    cfg = _toy_cfg()
    ds = _build(cfg.val_dataloader.dataset, tiny_world)
    assert ds.metainfo['classes'] == LABELS
    assert ds.metainfo['base_classes'] == SEEN_LABELS
    with open(osp.join(tiny_world, 'annotations', 'instances_val.json')) as f:
        coco = json.load(f)
    assert sum(len(ds.get_data_info(i)['instances'])
               for i in range(len(ds))) == len(coco['annotations'])
    from mmdet.registry import METRICS
    unseen = {LABELS.index(n) for n in UNSEEN_LABELS}
    for keep, base_ap, novel_ap in ((lambda label: True, 1.0, 1.0),
                                    (lambda label: label not in unseen, 1.0,
                                     0.0)):
        metric_cfg = copy.deepcopy(cfg.val_evaluator)
        metric_cfg['ann_file'] = osp.join(tiny_world, 'annotations',
                                          'instances_val.json')
        metric = METRICS.build(metric_cfg)
        metric.dataset_meta = ds.metainfo
        metric.process({}, _gt_as_predictions(ds, keep))
        res = metric.evaluate(len(ds))
        assert res['coco/base_ap'] == pytest.approx(base_ap)
        assert res['coco/novel_ap'] == pytest.approx(novel_ap)


@pytest.mark.parametrize('name', ['toy_world_det', 'coco_ov_48_17',
                                  'lvis_v1_ov'])
def test_configs_text_only_variant_is_the_pipeline_without_embeds(name):
    cfg = Config.fromfile(osp.join(DATASET_CFGS, f'{name}.py'))
    full = cfg.train_pipeline
    assert [t for t in full if t['type'] is not LoadCLIPProposalEmbeds
            ] == cfg.train_pipeline_text_only
    load = [t for t in full if t['type'] is LoadCLIPProposalEmbeds]
    assert [t['store_dir'] for t in load] == [cfg.clip_embeds_dir]
    assert full[-1]['type'] is PackViLDInputs
    ds = cfg.train_dataloader.dataset
    ds = ds.get('dataset', ds)  # LVIS: inside ClassBalancedDataset
    assert ds.pipeline == full


# -- The store and the transforms --------------------------------------------
def _make_store(root, images, dim=3, shard_size=2, dtype='float32',
                settings=None):
    """A store of ``images`` ({img_id: (boxes, embeds)}), in that order."""
    ids = list(images)
    index = make_store_index(settings or dict(test=1), len(ids), shard_size,
                             dim)
    write_store_index(root, index)
    for s, name in enumerate(index['shards']):
        part = ids[s * shard_size:(s + 1) * shard_size]
        write_shard(osp.join(root, name), part,
                    [images[i][0] for i in part],
                    [images[i][1] for i in part], index['settings_hash'], s,
                    dtype)
    return index


STORE_IMAGES = {
    7: (np.array([[1, 2, 10, 12], [0, 0, 5.5, 4]], np.float32),
        np.array([[0.6, 0.8, 0], [1, 0, 0]], np.float32)),
    3: (np.zeros((0, 4), np.float32), np.zeros((0, 3), np.float32)),
    12: (np.array([[3, 4, 30, 20]], np.float32),
         np.array([[0, 0.28, 0.96]], np.float32)),
}


def test_load_and_pack_give_the_stored_tensors(tmp_path):
    _make_store(str(tmp_path), STORE_IMAGES)
    load, pack = LoadCLIPProposalEmbeds(str(tmp_path)), PackViLDInputs()
    for img_id, (boxes, embeds) in STORE_IMAGES.items():
        results = load(dict(img_id=img_id, img=np.zeros((40, 50, 3),
                                                        np.uint8)))
        assert results['clip_proposals'].dtype == np.float32
        np.testing.assert_array_equal(results['clip_proposals'], boxes)
        np.testing.assert_array_equal(results['clip_embeds'], embeds)
        sample = pack(results)['data_samples']
        assert isinstance(sample, DetDataSample)
        props = sample.clip_proposals
        assert isinstance(props, InstanceData) and len(props) == len(boxes)
        assert props.bboxes.dtype == props.embeds.dtype == torch.float32
        assert props.bboxes.shape == (len(boxes), 4)
        assert props.embeds.shape == (len(boxes), 3)
        assert torch.equal(props.bboxes, torch.from_numpy(boxes))
        assert torch.equal(props.embeds, torch.from_numpy(embeds))
        assert props.metainfo['frame'] == 'original'  # nothing recorded
    # Without the loader, PackViLDInputs packs like PackDetInputs.
    plain = pack(dict(img=np.zeros((4, 4, 3), np.uint8), img_id=7))
    assert 'clip_proposals' not in plain['data_samples']
    # Still usable after a copy (what a spawned data-loader worker gets).
    again = copy.deepcopy(load)(dict(img_id=12))
    np.testing.assert_array_equal(again['clip_embeds'], STORE_IMAGES[12][1])


def test_float16_store_reads_back_as_float32(tmp_path):
    _make_store(str(tmp_path), STORE_IMAGES, dtype='float16')
    out = LoadCLIPProposalEmbeds(str(tmp_path))(dict(img_id=7))
    assert out['clip_embeds'].dtype == np.float32
    np.testing.assert_array_equal(
        out['clip_embeds'], STORE_IMAGES[7][1].astype(np.float16))
    np.testing.assert_array_equal(out['clip_proposals'], STORE_IMAGES[7][0])


def test_toy_pipeline_maps_proposals_like_the_metainfo(tmp_path, tiny_world):
    """Resize + flip: the homography mapping equals the scale-then-flip of
    ``map_boxes_to_input`` (the RoI head's own fallback)."""
    from mmovl.models import map_boxes_to_input
    with open(osp.join(tiny_world, 'annotations',
                       'instances_train.json')) as f:
        ids = [im['id'] for im in json.load(f)['images']]
    rng = np.random.default_rng(0)

    def boxes():
        xy = rng.uniform(0, 40, (2, 2))
        return np.concatenate([xy, xy + rng.uniform(1, 24, (2, 2))],
                              1).astype(np.float32)

    images = {i: (boxes(), rng.normal(size=(2, 5)).astype(np.float32))
              for i in ids}
    _make_store(str(tmp_path / 'store'), images, dim=5, shard_size=16)
    cfg = _toy_cfg()
    pipeline = copy.deepcopy(cfg.train_pipeline)
    pipeline[2]['store_dir'] = str(tmp_path / 'store')
    ds = _build(cfg.train_dataloader.dataset, tiny_world, pipeline=pipeline)
    flips = set()
    # RandomFlip draws from numpy's global generator: seeded, so that both
    # paths are seen every run (unseeded, 6 samples miss one 3 % of runs)
    np.random.seed(0)
    for idx in range(6):
        sample = ds[idx]['data_samples']
        assert sample.scale_factor == (2.0, 2.0)  # upscaled from 64
        flips.add(sample.flip)
        original, embeds = images[sample.img_id]
        props = sample.clip_proposals
        assert props.metainfo['frame'] == 'input'
        torch.testing.assert_close(
            props.bboxes,
            map_boxes_to_input(torch.from_numpy(original), sample.metainfo))
        assert torch.equal(props.embeds, torch.from_numpy(embeds))
        assert set(sample.gt_instances.labels.tolist()) <= set(range(24))
    assert flips == {True, False}  # both paths seen


@pytest.mark.parametrize('seed', range(8))
def test_scale_jitter_and_crop_map_proposals_like_gt_boxes(seed):
    """mmdet's RandomResize + RandomCrop + RandomFlip + Pad move gt boxes
    with their own box code; proposals packed with the recorded homography
    (min_visible=0) must land on the same boxes, and the ones the crop cuts
    away must go with their embeddings."""
    from mmcv.transforms import Compose, RandomResize
    from mmdet.datasets.transforms import Pad, RandomCrop, RandomFlip, Resize
    from mmdet.structures.bbox import HorizontalBoxes
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, [45, 35], (12, 2))
    boxes = np.concatenate([xy, np.minimum(xy + rng.uniform(1, 20, (12, 2)),
                                           [50, 40])], 1).astype(np.float32)
    embeds = np.arange(12, dtype=np.float32)[:, None].repeat(3, 1)
    pipeline = Compose([
        dict(type=RandomResize, scale=(50, 40), ratio_range=(0.5, 2.0),
             keep_ratio=True, resize_type=Resize),
        dict(type=RandomCrop, crop_type='absolute', crop_size=(30, 30),
             allow_negative_crop=True),
        dict(type=RandomFlip, prob=0.5, direction=['horizontal', 'vertical']),
        dict(type=Pad, size=(30, 30)),
        dict(type=PackViLDInputs, min_visible=0.0),
    ])
    np.random.seed(seed)  # the random transforms draw from numpy
    out = pipeline(
        dict(img=np.zeros((40, 50, 3), np.uint8), img_id=1,
             img_shape=(40, 50), ori_shape=(40, 50),
             gt_bboxes=HorizontalBoxes(boxes.copy()),
             gt_bboxes_labels=np.arange(12),
             gt_ignore_flags=np.zeros(12, bool),
             clip_proposals=boxes, clip_embeds=embeds))
    sample = out['data_samples']
    gt, props = sample.gt_instances, sample.clip_proposals
    assert props.metainfo['frame'] == 'input'
    assert props.embeds[:, 0].long().tolist() == gt.labels.tolist()
    torch.testing.assert_close(props.bboxes, gt.bboxes.tensor,
                               rtol=0, atol=1e-4)


def test_lvis_jitter_pipeline_keeps_proposals_with_their_boxes():
    """The LVIS base's steps after loading (large-scale jitter with masks)
    run on a sample with proposals; every proposal that stays lies inside
    the crop, and a proposal equal to a gt box lands where the gt box does
    (mmdet's own box code)."""
    from mmcv.transforms import Compose
    from mmdet.structures.bbox import HorizontalBoxes
    from mmdet.structures.mask import BitmapMasks
    cfg = Config.fromfile(osp.join(DATASET_CFGS, 'lvis_v1_ov.py'))
    steps = [t for t in cfg.train_pipeline
             if t['type'] not in (LoadImageFromFile, LoadAnnotations,
                                  LoadCLIPProposalEmbeds)]
    assert steps[-1]['type'] is PackViLDInputs
    init_default_scope('mmdet')
    pipeline = Compose(copy.deepcopy(steps))
    gt = np.array([[100, 50, 300, 200]], np.float32)
    masks = np.zeros((1, 400, 600), np.uint8)
    masks[0, 50:200, 100:300] = 1
    extra = [[0, 0, 600, 400], [500, 300, 590, 390]]
    proposals = np.concatenate([gt, extra]).astype(np.float32)
    embeds = np.eye(3, dtype=np.float32)
    seen = 0
    for seed in range(6):
        np.random.seed(seed)
        out = pipeline(
            dict(img=np.zeros((400, 600, 3), np.uint8), img_id=5,
                 img_shape=(400, 600), ori_shape=(400, 600),
                 gt_bboxes=HorizontalBoxes(gt.copy()),
                 gt_bboxes_labels=np.array([0]),
                 gt_ignore_flags=np.zeros(1, bool),
                 gt_masks=BitmapMasks(masks.copy(), 400, 600),
                 clip_proposals=proposals, clip_embeds=embeds))
        sample = out['data_samples']
        props = sample.clip_proposals
        h, w = sample.img_shape
        assert out['inputs'].shape[-2:] == (h, w)
        assert h <= 1024 and w <= 1024
        b = props.bboxes
        assert ((b[:, 0] >= 0) & (b[:, 1] >= 0) & (b[:, 2] <= w)
                & (b[:, 3] <= h)).all()
        first = props.embeds[:, 0] == 1  # the proposal equal to the gt box
        if first.any() and len(sample.gt_instances):
            # recompute_bbox=True: the crop redraws gt boxes around the
            # resized masks' whole pixels
            torch.testing.assert_close(b[first],
                                       sample.gt_instances.bboxes.tensor,
                                       rtol=0, atol=1.0)
            seen += 1
    assert seen > 0


def test_min_visible_drops_mostly_cropped_proposals():
    pack = PackViLDInputs(min_visible=0.5)
    boxes = np.array([[0, 0, 10, 10], [15, 0, 25, 10], [18, 0, 28, 10]],
                     np.float32)
    shift = np.array([[1, 0, -10], [0, 1, 0], [0, 0, 1]], np.float32)
    mapped, keep = pack.map_proposals(boxes, shift, (10, 10))
    # shifted left by 10 into a 10 x 10 image: the first box leaves it, the
    # second keeps 5 of its 10 columns (exactly half), the third 2 of 10
    assert keep.tolist() == [False, True, False]
    np.testing.assert_allclose(mapped[1], [5, 0, 10, 10])
    with pytest.raises(ValueError, match='min_visible'):
        PackViLDInputs(min_visible=1.5)
    with pytest.raises(ValueError, match='x2 >= x1'):
        pack(dict(img=np.zeros((10, 10, 3), np.uint8), img_id=4,
                  img_shape=(10, 10), homography_matrix=np.eye(3),
                  clip_proposals=np.array([[5, 0, 1, 3]], np.float32),
                  clip_embeds=np.ones((1, 2), np.float32)))


def test_store_errors_name_the_file(tmp_path):
    root = str(tmp_path / 'store')
    index = _make_store(root, STORE_IMAGES)
    shard0, shard1 = (osp.join(root, n) for n in index['shards'])

    with pytest.raises(KeyError, match=r'Image 99 \(x\.png\).*store'):
        LoadCLIPProposalEmbeds(root)(dict(img_id=99, img_path='x.png'))

    with open(shard1, 'rb') as f:
        data = f.read()
    with open(shard1, 'wb') as f:  # truncated, as by a full disk
        f.write(data[:-10])
    with pytest.raises(ProposalEmbedStoreError, match=shard1):
        LoadCLIPProposalEmbeds(root)(dict(img_id=7))

    os.remove(shard1)
    with pytest.raises(FileNotFoundError, match=shard1):
        LoadCLIPProposalEmbeds(root)(dict(img_id=7))

    # A shard of another run (other settings) is not taken for this one's.
    other = str(tmp_path / 'other')
    other_index = _make_store(other, {1: STORE_IMAGES[7], 2: STORE_IMAGES[3]},
                              settings=dict(test=2))
    os.replace(osp.join(other, other_index['shards'][0]), shard1)
    with pytest.raises(ProposalEmbedStoreError,
                       match=f'{shard1} was written by another run'):
        LoadCLIPProposalEmbeds(root)(dict(img_id=7))

    with pytest.raises(FileNotFoundError, match='index.json'):
        LoadCLIPProposalEmbeds(str(tmp_path / 'nowhere'))(dict(img_id=7))
    assert osp.isfile(shard0)
