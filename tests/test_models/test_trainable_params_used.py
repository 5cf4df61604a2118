# Copyright (c) mmovl contributors. All rights reserved.
"""Every trainable parameter of every shipped config's model receives a
gradient from one training loss.

DistributedDataParallel (without ``find_unused_parameters``, which mmovl
never enables) fails at the second iteration ("Expected to have finished
reduction in the prior iteration") when a parameter that requires a
gradient gets none. So each config's model is built as ``tools/train.py``
builds it (random weights of the same architectures in place of the weight
files, no ``Pretrained`` init), initialised, given a tiny fake batch, and
its parsed loss is back-propagated once: every parameter with
``requires_grad`` must then have a gradient.

The real (paper-size) configs are built at their real size: a few seconds
each on a CPU.

The toy configs' models also take one step under bfloat16 CPU autocast
(``tools/train.py --amp`` on a machine without a GPU): mmovl's losses stay
float32 and near the float32 run's, and the gradients are finite.
"""
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import MODELS, DefaultScope
from mmengine.structures import InstanceData
from mmpretrain.structures import DataSample

import mmovl  # noqa: F401
from mmovl.testing.random_weights import write_open_clip_checkpoint

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG_ROOT = osp.join(REPO, 'mmovl', 'configs')
CONFIGS = sorted(
    p for p in glob.glob(osp.join(CONFIG_ROOT, '**', '*.py'), recursive=True)
    if '_base_' not in p.split(osp.sep))
NAMES = ['red circle', 'blue square', 'green cross', 'purple diamond']
# Configs whose model is another config's (checked, not built twice).
SAME_MODEL = {'mkt/vit-b16_nuswide.py': 'mkt/mkt_vit_b16_20e_nuswide.py'}


@pytest.fixture(scope='module')
def clip_weights(tmp_path_factory):
    """Random open_clip weights by architecture name, written once."""
    folder = tmp_path_factory.mktemp('clip_weights')

    def get(model_name):
        return write_open_clip_checkpoint(
            str(folder / f'{model_name}.safetensors'), model_name)

    return get


def _without_weight_files(node, clip_weights, cache_dir):
    """In place: CLIP checkpoints become random weights of the same
    architecture, ``Pretrained`` init configs go, label-embedding caches
    go to a temporary folder."""
    if isinstance(node, dict):
        init_cfg = node.get('init_cfg')
        if isinstance(init_cfg, (list, tuple)):
            node['init_cfg'] = [
                c for c in init_cfg if c.get('type') != 'Pretrained'
            ] or None
        elif isinstance(init_cfg, dict) and \
                init_cfg.get('type') == 'Pretrained':
            node['init_cfg'] = None
        if node.get('model_name') and node.get('checkpoint'):
            node['checkpoint'] = clip_weights(node['model_name'])
        if node.get('cache_dir'):
            node['cache_dir'] = cache_dir
        for value in node.values():
            _without_weight_files(value, clip_weights, cache_dir)
    elif isinstance(node, (list, tuple)):
        for value in node:
            _without_weight_files(value, clip_weights, cache_dir)


def _fewer_rois(train_cfg):
    """Sample fewer anchors / RoIs a batch (the architecture is the
    same): a detector's real counts cost tens of seconds on a CPU."""
    train_cfg.rpn.sampler.num = 32
    train_cfg.rpn_proposal.update(nms_pre=200, max_per_img=50)
    train_cfg.rcnn.sampler.num = 32


def _build(cfg, clip_weights, cache_dir):
    """The config's model, as the runner builds and initialises it."""
    _without_weight_files(cfg.model, clip_weights, cache_dir)
    if cfg.get('default_scope', None) == 'mmdet':
        _fewer_rois(cfg.model.train_cfg)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()  # as the runner does before training
    model.train()
    if hasattr(model, 'set_vocabulary'):
        model.set_vocabulary(NAMES)
    return model


def _batch(model, scope):
    return _det_batch(model) if scope == 'mmdet' else _cls_batch(model)


def _image_size(model):
    """The input size a model's ViT was built for, else a small one."""
    import open_clip
    for m in model.modules():
        if isinstance(m, open_clip.transformer.VisionTransformer):
            return tuple(m.image_size)
    return (64, 64)


def _cls_batch(model):
    h, w = _image_size(model)
    samples = []
    for i, labels in enumerate([[0], [1, 3]]):
        sample = DataSample().set_gt_label(labels)
        # UniCL's triplets: a text and one label per image
        sample.set_metainfo(
            dict(text=f'a photo of a {NAMES[labels[0]]}.', sample_idx=i))
        samples.append(sample)
    inputs = [torch.randint(0, 256, (3, h, w), dtype=torch.uint8)] * 2
    return model.data_preprocessor(
        dict(inputs=inputs, data_samples=samples), True)


def _det_batch(model):
    from mmdet.testing import demo_mm_inputs
    data = demo_mm_inputs(2, [(3, 64, 96), (3, 96, 64)],
                          num_classes=len(NAMES), with_mask=True)
    dim = model.teacher.embed_dim
    boxes = torch.tensor([[4., 6., 30., 40.], [10., 10., 40., 44.]])
    for i, sample in enumerate(data['data_samples']):
        sample.set_metainfo(dict(scale_factor=(1.0, 1.0), flip=False))
        # precomputed proposals with CLIP embeddings: ViLD-image's input
        sample.clip_proposals = InstanceData(
            bboxes=boxes[:2 - i],
            embeds=torch.nn.functional.normalize(
                torch.randn(2 - i, dim), dim=-1))
    return model.data_preprocessor(data, True)


@pytest.mark.parametrize('path', CONFIGS,
                         ids=lambda p: osp.relpath(p, CONFIG_ROOT))
def test_every_trainable_parameter_gets_a_gradient(path, tmp_path,
                                                   clip_weights):
    name = osp.relpath(path, CONFIG_ROOT)
    cfg = Config.fromfile(path)
    if name in SAME_MODEL:
        other = Config.fromfile(osp.join(CONFIG_ROOT, SAME_MODEL[name]))
        assert cfg.model == other.model
        return
    scope = cfg.get('default_scope', None)
    with DefaultScope.overwrite_default_scope(scope):
        model = _build(cfg, clip_weights, str(tmp_path / 'cache'))
        data = _batch(model, scope)
        losses = model.loss(data['inputs'], data['data_samples'])
        loss, _ = model.parse_losses(losses)
    assert torch.isfinite(loss), losses
    loss.backward()

    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable, 'nothing to train'
    unused = [
        n for n, p in model.named_parameters()
        if p.requires_grad and p.grad is None
    ]
    assert not unused, (
        f'{len(unused)} of {len(trainable)} trainable parameters get no '
        f'gradient from the loss (DDP stops at the second iteration): '
        f'{unused}')


def _loss_values(losses):
    """The loss terms (mmengine's ``parse_losses`` rule: keys with 'loss';
    a list of per-level terms counts as their sum)."""
    out = {}
    for key, value in losses.items():
        if 'loss' in key:
            out[key] = sum(value) if isinstance(value, list) else value
    return out


@pytest.mark.parametrize(
    'path', [p for p in CONFIGS if 'toy' in osp.basename(p)],
    ids=lambda p: osp.relpath(p, CONFIG_ROOT))
def test_toy_model_trains_under_cpu_bfloat16_autocast(path, tmp_path,
                                                      clip_weights):
    """One step as ``CPUAmpOptimWrapper`` runs it (``--amp`` on a CPU):
    mmovl's losses are float32, close to the float32 losses of the same
    weights and batch; gradients reach the parameters, float32 and
    finite."""
    cfg = Config.fromfile(path)
    scope = cfg.get('default_scope', None)
    with DefaultScope.overwrite_default_scope(scope):
        model = _build(cfg, clip_weights, str(tmp_path / 'cache'))
        data = _batch(model, scope)
        torch.manual_seed(1)
        with torch.no_grad():
            reference = _loss_values(
                model.loss(data['inputs'], data['data_samples']))
        torch.manual_seed(1)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            losses = model.loss(data['inputs'], data['data_samples'])
            loss, _ = model.parse_losses(losses)
    mmovl_model = type(model).__module__.startswith('mmovl.')
    for key, value in _loss_values(losses).items():
        assert torch.isfinite(value), key
        if mmovl_model:
            # bfloat16 keeps 8 bits: a loss summed in it would round
            assert value.dtype == torch.float32, (key, value.dtype)
        if scope != 'mmdet':
            # (a detector samples other RoIs from bfloat16 proposals)
            assert value.item() == pytest.approx(
                reference[key].item(), rel=0.05, abs=0.02), key
    loss.backward()
    grads = [(n, p.grad) for n, p in model.named_parameters()
             if p.requires_grad]
    assert all(g is not None for _, g in grads)
    for name, grad in grads:
        assert grad.dtype == torch.float32, name
        assert torch.isfinite(grad).all(), name
