# Copyright (c) mmovl contributors. All rights reserved.
import json
import os
import os.path as osp
from collections import Counter

import numpy as np
from PIL import Image
from pycocotools.coco import COCO

from mmovl.datasets import toy_world as tw


def _load(root, name):
    with open(osp.join(root, 'annotations', name)) as f:
        return json.load(f)


def test_label_split_is_compositional():
    assert len(tw.LABELS) == 30 and len(set(tw.LABELS)) == 30
    assert set(tw.SEEN_LABELS) | set(tw.UNSEEN_LABELS) == set(tw.LABELS)
    assert not set(tw.SEEN_LABELS) & set(tw.UNSEEN_LABELS)
    seen_words = {w for name in tw.SEEN_LABELS for w in name.split()}
    for name in tw.UNSEEN_LABELS:
        assert set(name.split()) <= seen_words, name
    # every colour and every shape is held out at least once
    assert {n.split()[0] for n in tw.UNSEEN_LABELS} == set(tw.COLORS)
    assert {n.split()[1] for n in tw.UNSEEN_LABELS} == set(tw.SHAPES)


def test_files_follow_coco_formats(tiny_world):
    for split, n in (('train', 48), ('train_lt', 40), ('val', 11)):
        coco = COCO(osp.join(tiny_world, 'annotations',
                             f'instances_{split}.json'))
        assert len(coco.getImgIds()) == n
        assert [c['name'] for c in coco.loadCats(coco.getCatIds())
                ] == list(tw.LABELS)
        for img in coco.loadImgs(coco.getImgIds()):
            path = osp.join(tiny_world, split, img['file_name'])
            assert Image.open(path).size == (img['width'], img['height'])
            anns = coco.loadAnns(coco.getAnnIds(imgIds=img['id']))
            assert 1 <= len(anns) <= 4
            for a in anns:
                x, y, w, h = a['bbox']
                assert 0 <= x and 0 <= y and x + w <= 64 and y + h <= 64
                # the mask polygon lies inside its box
                assert coco.annToMask(a).sum() > 0.3 * w * h
        captions = _load(tiny_world, f'captions_{split}.json')
        assert len(captions['annotations']) == n


def test_pixels_show_the_labelled_colour(tiny_world):
    ann = _load(tiny_world, 'instances_val.json')
    by_image = {}
    for a in ann['annotations']:
        by_image.setdefault(a['image_id'], []).append(a)
    hits = total = 0
    for img in ann['images']:
        pixels = np.asarray(
            Image.open(osp.join(tiny_world, 'val', img['file_name'])),
            dtype=np.float64)
        for a in by_image[img['id']]:
            x, y, w, h = a['bbox']
            cx, cy = int(x + w / 2), int(y + h / 2)
            colour = tw.COLORS[tw.LABELS[a['category_id'] - 1].split()[0]]
            dist = np.abs(pixels[cy, cx] - np.array(colour)).max()
            hits += dist <= 21  # colour jitter is at most 20 per channel
            total += 1
    # a later shape may cover an earlier one's centre (boxes overlap < 0.1)
    assert hits >= 0.9 * total


def test_captions_name_every_object(tiny_world):
    inst = _load(tiny_world, 'instances_train.json')
    caps = {c['image_id']: c['caption']
            for c in _load(tiny_world, 'captions_train.json')['annotations']}
    labels = {}
    for a in inst['annotations']:
        name = tw.LABELS[a['category_id'] - 1]
        labels.setdefault(a['image_id'], set()).add(name)
    for image_id, names in labels.items():
        for name in names:
            assert name.split()[0] in caps[image_id]
            assert name.split()[1] in caps[image_id]


def test_deterministic_and_idempotent(tmp_path):
    cfg = tw.ToyWorldConfig(num_train=5, num_train_lt=5, num_val=3)
    a, b = str(tmp_path / 'a'), str(tmp_path / 'b')
    assert tw.generate_toy_world(a, cfg)
    assert tw.generate_toy_world(b, cfg)
    for name in ('instances_train.json', 'captions_val.json'):
        assert _load(a, name) == _load(b, name)
    assert (open(osp.join(a, 'val', '000002.png'), 'rb').read() ==
            open(osp.join(b, 'val', '000002.png'), 'rb').read())
    mtime = os.path.getmtime(osp.join(a, 'annotations',
                                      'instances_val.json'))
    assert not tw.generate_toy_world(a, cfg)  # same world: kept
    assert os.path.getmtime(
        osp.join(a, 'annotations', 'instances_val.json')) == mtime
    # another seed is another world
    assert tw.generate_toy_world(a, tw.ToyWorldConfig(5, 5, 3, seed=1))
    assert _load(a, 'instances_train.json') != _load(b,
                                                     'instances_train.json')
    assert not [f for f in os.listdir(osp.join(a, 'annotations'))
                if '.tmp' in f]


def test_long_tailed_variant_follows_power_law():
    probs = tw.label_frequencies(True, 1.6, seed=0)
    assert np.isclose(probs.sum(), 1.0)
    ranks = np.argsort(-probs)
    # p(rank r) ~ r^-1.6: consecutive ratios as the formula says
    ratios = probs[ranks[:-1]] / probs[ranks[1:]]
    expected = ((np.arange(2, 31)) / np.arange(1, 30))**1.6
    assert np.allclose(ratios, expected)
    # sampled objects follow it: the head label is far more frequent
    cfg = tw.ToyWorldConfig()
    rng = np.random.default_rng(0)
    counts = Counter()
    for _ in range(300):
        _, objs = tw.render_image(rng, cfg, probs)
        counts.update(o['label'] for o in objs)
    assert counts[ranks[0]] > 5 * max(counts[ranks[-1]], 1)
    assert np.allclose(tw.label_frequencies(False, 1.6, 0), 1 / 30)
