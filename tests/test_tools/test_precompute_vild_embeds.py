# Copyright (c) mmovl contributors. All rights reserved.
"""tools/misc/precompute_vild_embeds.py end to end, on five tiny images
with a randomly initialised mmdet RPN and a random toy CLIP: the stored
boxes are the RPN's own top proposals, a stored embedding is the normalised
sum of the teacher's embeddings of its two crops computed here
independently, and an interrupted run resumes to the same store without
recomputing finished shards."""
import copy
import json
import math
import os
import os.path as osp
import shutil
import subprocess
import sys

import mmcv
import numpy as np
import open_clip
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import save_file

import mmovl.embeds.vild as vild_embeds
from mmovl.embeds.proposal_store import (ProposalEmbedStore,
                                         ProposalEmbedStoreError)
from mmovl.embeds.vild import (build_proposal_dataset, build_proposal_model,
                               crop_region, precompute_vild_embeds)
from mmovl.models import CLIPTeacher

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
NUM_PROPOSALS = 6
IMG_IDS = [11, 12, 13, 14]  # not positions: catches id / index mix-ups
# Shards of 2 images: [11, 12] and [13, 14].
WIDTH, HEIGHT = 80, 48  # not square: catches x / y swaps

# A tiny RPN (ResNet-18 with 8 base channels, FPN of 16); the test pipeline
# upscales to 160x96 so that the boxes are rescaled back.
RPN_CONFIG = """
default_scope = 'mmdet'
model = dict(
    type='RPN',
    data_preprocessor=dict(
        type='DetDataPreprocessor', mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375], bgr_to_rgb=True, pad_size_divisor=32),
    backbone=dict(type='ResNet', depth=18, base_channels=8,
                  out_indices=(0, 1, 2, 3), norm_eval=False),
    neck=dict(type='FPN', in_channels=[8, 16, 32, 64], out_channels=16,
              num_outs=5),
    rpn_head=dict(
        type='RPNHead', in_channels=16, feat_channels=16,
        anchor_generator=dict(type='AnchorGenerator', scales=[8],
                              ratios=[0.5, 1.0, 2.0],
                              strides=[4, 8, 16, 32, 64]),
        bbox_coder=dict(type='DeltaXYWHBBoxCoder',
                        target_means=[0.0, 0.0, 0.0, 0.0],
                        target_stds=[1.0, 1.0, 1.0, 1.0]),
        loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=True),
        loss_bbox=dict(type='L1Loss')),
    train_cfg=None,
    test_cfg=dict(rpn=dict(nms_pre=200, max_per_img=100,
                           nms=dict(type='nms', iou_threshold=0.7),
                           min_bbox_size=0)))
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(160, 96), keep_ratio=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape',
                                          'img_shape', 'scale_factor')),
]
test_dataloader = dict(dataset=dict(type='CocoDataset',
                                    pipeline=test_pipeline))
"""


@pytest.fixture(scope='module')
def world(tmp_path_factory):
    """Images, their COCO json, the RPN (config + safetensors weights) and
    random toy CLIP weights."""
    root = tmp_path_factory.mktemp('vild_world')
    rng = np.random.default_rng(0)
    images = []
    for img_id in IMG_IDS:
        pixels = rng.integers(0, 60, (HEIGHT, WIDTH, 3), dtype=np.uint8)
        for _ in range(3):  # bright rectangles for the crops to differ
            x, y = rng.integers(0, WIDTH - 20), rng.integers(0, HEIGHT - 16)
            pixels[y:y + 16, x:x + 20] = rng.integers(80, 255, 3)
        name = f'{img_id}.png'
        os.makedirs(root / 'images', exist_ok=True)
        Image.fromarray(pixels).save(root / 'images' / name)
        images.append(dict(id=img_id, file_name=name, width=WIDTH,
                           height=HEIGHT))
    coco = dict(images=images, annotations=[],
                categories=[dict(id=1, name='thing')])
    with open(root / 'instances.json', 'w') as f:
        json.dump(coco, f)
    (root / 'rpn.py').write_text(RPN_CONFIG)
    torch.manual_seed(0)
    model = build_proposal_model(str(root / 'rpn.py'))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()},
              str(root / 'rpn.safetensors'))
    torch.manual_seed(0)
    clip = open_clip.create_model('mmovl-toy-vit')
    save_file({k: v.contiguous() for k, v in clip.state_dict().items()},
              str(root / 'clip.safetensors'))
    return root


def _run_python(args):
    # As tests/test_tools/conftest.py's run_python, for a module fixture.
    proc = subprocess.run(
        [sys.executable] + args, cwd=REPO, capture_output=True, text=True,
        timeout=600, env={**os.environ, 'PYTHONPATH': REPO})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]


def _inputs(world, num_proposals=NUM_PROPOSALS):
    model = build_proposal_model(str(world / 'rpn.py'),
                                 str(world / 'rpn.safetensors'),
                                 num_proposals)
    dataset = build_proposal_dataset(
        model.cfg, ann_file=str(world / 'instances.json'),
        img_dir=str(world / 'images'))
    teacher = CLIPTeacher('mmovl-toy-vit',
                          checkpoint=str(world / 'clip.safetensors'))
    return model, dataset, teacher


@pytest.fixture(scope='module')
def inputs(world):
    """Proposal model, data set and teacher, built once (runs share them:
    precompute_vild_embeds does not change them)."""
    return _inputs(world)


def _run(inputs, out, **kwargs):
    model, dataset, teacher = inputs
    kwargs = dict(dict(num_proposals=NUM_PROPOSALS, shard_size=2,
                       batch_size=2, num_workers=0, dtype='float32',
                       progress=False), **kwargs)
    return precompute_vild_embeds(model, teacher, dataset, str(out), **kwargs)


def _read_all(out):
    store = ProposalEmbedStore(str(out))
    return {i: store.get(i) for i in store.img_ids}


@pytest.fixture(scope='module')
def cli_store(world, tmp_path_factory):
    """The store the command line writes. Slow (10-30 s on 2 shared cores):
    the subprocess imports torch, mmdet and open_clip afresh; it is the only
    test of the command line itself, so it runs once per module."""
    out = tmp_path_factory.mktemp('cli') / 'store'
    _run_python([
        'tools/misc/precompute_vild_embeds.py',
        str(world / 'rpn.py'), str(world / 'rpn.safetensors'),
        '--ann-file', str(world / 'instances.json'),
        '--img-dir', str(world / 'images'),
        '--clip-model', 'mmovl-toy-vit',
        '--clip-checkpoint', str(world / 'clip.safetensors'),
        '--out', str(out), '--num-proposals', str(NUM_PROPOSALS),
        '--shard-size', '2', '--batch-size', '2', '--dtype', 'float32',
        '--num-workers', '0', '--device', 'cpu'])
    return out


def test_crop_region_hand_checked():
    assert crop_region((10.2, 20.5, 30.0, 40.0), 1.0, 64, 64) == (10, 20, 30,
                                                                  40)
    # centre (20.1, 30.25), sides 29.7 x 29.25 -> [5.25, 34.95] x
    # [15.625, 44.875]
    assert crop_region((10.2, 20.5, 30.0, 40.0), 1.5, 64, 64) == (5, 15, 35,
                                                                  45)
    # clipped at the top and right border: [46.5, 67.5] x [-2.5, 12.5]
    assert crop_region((50, 0, 64, 10), 1.5, 48, 64) == (46, 0, 64, 13)
    # a degenerate box still gives one pixel
    assert crop_region((63.5, 47.5, 63.5, 47.5), 1.0, 48, 64) == (63, 47, 64,
                                                                  48)


def test_cli_stores_the_rpn_top_proposals(world, inputs, cli_store):
    from mmdet.apis import inference_detector
    with open(osp.join(cli_store, 'index.json')) as f:
        index = json.load(f)
    assert index['num_shards'] == 2 and index['num_images'] == 4
    assert sorted(os.listdir(cli_store)) == ['index.json'] + index['shards']
    stored = _read_all(cli_store)
    assert sorted(stored) == IMG_IDS
    model = inputs[0]
    for img_id in IMG_IDS:
        boxes, embeds = stored[img_id]
        assert boxes.shape == (NUM_PROPOSALS, 4)
        assert embeds.shape == (NUM_PROPOSALS, 64)
        # The RPN run on its own, one image at a time: its proposals come
        # best first and in original pixels (rescale=True).
        pred = inference_detector(
            model, str(world / 'images' / f'{img_id}.png')).pred_instances
        np.testing.assert_allclose(
            boxes, pred.bboxes[:NUM_PROPOSALS].numpy(), rtol=0, atol=1e-4)
        assert (boxes[:, [0, 2]] <= WIDTH).all()
        assert (boxes[:, [1, 3]] <= HEIGHT).all() and (boxes >= 0).all()
        np.testing.assert_allclose(np.linalg.norm(embeds, axis=1), 1,
                                   atol=1e-5)


def test_stored_embedding_equals_independent_crops(world, inputs, cli_store):
    teacher = inputs[2]
    stored = _read_all(cli_store)
    image = np.asarray(Image.open(world / 'images' / '13.png'))  # RGB
    mean = torch.tensor(teacher.mean).view(3, 1, 1)
    std = torch.tensor(teacher.std).view(3, 1, 1)
    for k in (0, NUM_PROPOSALS - 1):
        x1, y1, x2, y2 = stored[13][0][k].tolist()
        feats = []
        for scale in (1.0, 1.5):
            w, h = (x2 - x1) * scale, (y2 - y1) * scale
            cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
            left = max(0, math.floor(cx - w / 2))
            top = max(0, math.floor(cy - h / 2))
            right = min(WIDTH, math.ceil(cx + w / 2))
            bottom = min(HEIGHT, math.ceil(cy + h / 2))
            patch = image[top:bottom, left:right]
            big = patch.shape[0] >= 64 and patch.shape[1] >= 64
            patch = mmcv.imresize(patch, (64, 64),
                                  interpolation='area' if big else 'bicubic')
            pixels = torch.from_numpy(patch).permute(2, 0, 1).float() / 255
            feats.append(teacher.encode_image(((pixels - mean) / std)[None]))
        expected = F.normalize(feats[0] + feats[1], dim=-1)[0]
        np.testing.assert_allclose(stored[13][1][k], expected.numpy(),
                                   rtol=0, atol=1e-5)


def test_resume_after_interruption(inputs, cli_store, tmp_path,
                                   monkeypatch):
    out = tmp_path / 'store'
    shards = [out / f'shard-0000{i}-of-00002.safetensors' for i in range(2)]

    # 1. Stopped on purpose after one shard.
    summary = _run(inputs, out, max_shards=1)
    assert (summary['computed'], summary['complete']) == (1, 0)
    assert shards[0].is_file() and not shards[1].exists()
    with pytest.raises(FileNotFoundError, match=str(shards[1])):
        ProposalEmbedStore(str(out))
    stat0 = os.stat(shards[0])

    # 2. Killed in the middle of shard 1 (its 2nd image), after a writer
    # died leaving a temporary file.
    calls = []
    real = vild_embeds.encode_proposal_crops

    def dies_on_second_image_of_shard_1(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(vild_embeds, 'encode_proposal_crops',
                        dies_on_second_image_of_shard_1)
    with pytest.raises(KeyboardInterrupt):
        _run(inputs, out)
    monkeypatch.undo()
    assert len(calls) == 2  # shard 0 was skipped, shard 1 half done
    assert not shards[1].exists()
    (out / '.tmp-123-shard-00001-of-00002.safetensors').write_bytes(b'x')

    # 3. The rerun finishes: shard 0 untouched, the rest as never stopped.
    summary = _run(inputs, out)
    assert (summary['computed'], summary['skipped'],
            summary['complete']) == (1, 1, 1)
    after = os.stat(shards[0])
    assert (after.st_ino, after.st_mtime_ns) == (stat0.st_ino,
                                                 stat0.st_mtime_ns)
    assert not [n for n in os.listdir(out) if n.startswith('.tmp')]
    # Same as the uninterrupted run of the command line (up to float
    # rounding between processes).
    result, reference = _read_all(out), _read_all(cli_store)
    assert sorted(result) == sorted(reference) == IMG_IDS
    for img_id in IMG_IDS:
        for got, want in zip(result[img_id], reference[img_id]):
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


def test_rerun_checks_settings_and_repairs_a_corrupt_shard(
        inputs, cli_store, tmp_path):
    out = tmp_path / 'store'
    shutil.copytree(cli_store, out)
    assert _run(inputs, out)['computed'] == 0  # complete: nothing to do
    with pytest.raises(ProposalEmbedStoreError,
                       match=r"other settings \(differing: \['proposals'\]"):
        _run(inputs, out, num_proposals=NUM_PROPOSALS - 1)
    with pytest.raises(ProposalEmbedStoreError, match='shard_size'):
        _run(inputs, out, shard_size=3)

    shard = out / 'shard-00001-of-00002.safetensors'
    shard.write_bytes(shard.read_bytes()[:-7])
    with pytest.raises(ProposalEmbedStoreError, match=str(shard)):
        ProposalEmbedStore(str(out))
    assert _run(inputs, out)['computed'] == 1
    expected, got = _read_all(cli_store), _read_all(out)
    for img_id in (13, 14):
        for got_arr, want in zip(got[img_id], expected[img_id]):
            np.testing.assert_allclose(got_arr, want, rtol=0, atol=1e-6)


def test_two_parts_fill_one_store(inputs, cli_store, tmp_path):
    out = tmp_path / 'store'
    first = _run(inputs, out, part=1, num_parts=2)
    assert (first['computed'], first['complete']) == (1, 0)
    assert sorted(os.listdir(out)) == ['index.json',
                                       'shard-00001-of-00002.safetensors']
    assert _run(inputs, out, part=0, num_parts=2)['complete'] == 1
    got, expected = _read_all(out), _read_all(cli_store)
    for img_id in IMG_IDS:
        for got_arr, want in zip(got[img_id], expected[img_id]):
            np.testing.assert_allclose(got_arr, want, rtol=0, atol=1e-6)


def test_dataset_from_a_training_config_keeps_every_image(inputs,
                                                          tiny_world):
    from mmengine.config import Config
    cfg = Config.fromfile(
        osp.join(REPO, 'configs', '_base_', 'datasets', 'toy_world_det.py'))
    ds_cfg = cfg.train_dataloader.dataset
    ds_cfg.data_root = tiny_world
    dataset = build_proposal_dataset(inputs[0].cfg, dataset_cfg=ds_cfg)
    # The training set filters images without a seen box; the store must
    # cover them all, read with the proposal model's own pipeline.
    with open(osp.join(tiny_world, 'annotations',
                       'instances_train.json')) as f:
        assert len(dataset) == len(json.load(f)['images'])
    names = [type(t).__name__ for t in dataset.pipeline.transforms]
    assert names == ['LoadImageFromFile', 'Resize', 'PackDetInputs']


def test_two_stage_detector_gives_its_rpn_proposals(inputs):
    """A two-stage detector (e.g. a ViLD-text model trained on base
    classes) is used through its RPN: with the test RPN's weights its
    proposals are the RPN's, not its final detections."""
    from mmengine.config import Config
    from mmengine.dataset import pseudo_collate

    from mmovl.embeds.vild import predict_proposals
    rpn, dataset, _ = inputs
    cfg = Config(dict(default_scope='mmdet', model=copy.deepcopy(
        rpn.cfg.model.to_dict()), test_dataloader=rpn.cfg.test_dataloader))
    cfg.model.type = 'FasterRCNN'
    cfg.model.roi_head = dict(
        type='StandardRoIHead',
        bbox_roi_extractor=dict(
            type='SingleRoIExtractor', out_channels=16,
            roi_layer=dict(type='RoIAlign', output_size=7, sampling_ratio=0),
            featmap_strides=[4, 8, 16, 32]),
        bbox_head=dict(type='Shared2FCBBoxHead', in_channels=16,
                       fc_out_channels=32, roi_feat_size=7, num_classes=2))
    cfg.model.test_cfg.rcnn = dict(score_thr=0.0, max_per_img=3,
                                   nms=dict(type='nms', iou_threshold=0.5))
    two_stage = build_proposal_model(cfg, num_proposals=NUM_PROPOSALS)
    missing, unexpected = two_stage.load_state_dict(
        {k.replace('bbox_head.', 'rpn_head.'): v
         for k, v in rpn.state_dict().items()}, strict=False)
    assert not unexpected and all(k.startswith('roi_head.') for k in missing)
    batch = pseudo_collate([dataset[0], dataset[1]])
    for got, want in zip(predict_proposals(two_stage, batch, NUM_PROPOSALS),
                         predict_proposals(rpn, batch, NUM_PROPOSALS)):
        assert got.shape == (NUM_PROPOSALS, 4)  # not the 3 detections
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


def test_the_steps_plan_check_and_run(world, inputs, cli_store, tmp_path):
    """precompute_vild_embeds in its steps: the plan reads and writes
    nothing; the store check writes the index, and a store of the same
    settings (the command line's) is found complete; a run computes just
    the shards it is given."""
    import dataclasses
    import hashlib

    from mmovl.embeds.vild import (check_vild_store, pending_vild_shards,
                                   plan_vild_embeds, run_vild_embeds)
    model, dataset, teacher = inputs
    out = tmp_path / 'store'
    plan = plan_vild_embeds(model, teacher, dataset, str(out),
                            num_proposals=NUM_PROPOSALS, shard_size=2,
                            dtype='float32')
    assert not out.exists()
    clip_sha = hashlib.sha256(
        (world / 'clip.safetensors').read_bytes()).hexdigest()
    assert plan.settings['teacher']['weights'] == teacher.weights_id == \
        f'sha256:{clip_sha}'
    assert (plan.num_shards, plan.shard_img_ids(1)) == (2, [13, 14])

    check_vild_store(plan)
    assert os.listdir(out) == ['index.json']
    assert pending_vild_shards(plan) == ([0, 1], 0)
    assert pending_vild_shards(plan, part=1, num_parts=2) == ([1], 0)
    assert pending_vild_shards(plan, max_shards=1) == ([0], 0)
    with pytest.raises(ValueError, match='part must be in'):
        pending_vild_shards(plan, part=2, num_parts=2)

    reference = tmp_path / 'reference'
    shutil.copytree(cli_store, reference)
    done = dataclasses.replace(plan, out_dir=str(reference))
    check_vild_store(done)
    assert pending_vild_shards(done) == ([], 2)

    run_vild_embeds(plan, model, teacher, dataset, [1], batch_size=2,
                    num_workers=0, progress=False)
    assert pending_vild_shards(plan) == ([0], 1)
    assert sorted(os.listdir(out)) == ['index.json',
                                       'shard-00001-of-00002.safetensors']
