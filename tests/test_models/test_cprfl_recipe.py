# Copyright (c) mmovl contributors. All rights reserved.
"""The paper configs' recipe against the authors' training code
(github jiexuanyan/CPRFL ``train.py``, ``utils/LT_engine_grouplr.py``,
``src/helper_functions/helper_functions.py``): the optimiser's groups, the
OneCycle schedule, the EMA, the input scale, the pipeline."""
import os.path as osp

import numpy as np
import pytest
import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.model import ExponentialMovingAverage
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope, init_default_scope

import mmovl  # noqa: F401
from mmovl.engine import CheckpointableOneCycleLR
from mmovl.utils import safe_torch_load

CONFIG_DIR = osp.join(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'mmovl',
    'configs', 'cprfl')


@pytest.fixture(scope='module', params=['coco', 'voc'])
def cfg(request):
    return Config.fromfile(
        osp.join(CONFIG_DIR, f'cprfl_r101_80e_{request.param}_lt.py'))


class _Named(nn.Module):
    """Parameters of the kinds CPRFL has: weights, biases, norms, an
    embedding table, 2-d and 1-d bare parameters."""

    def __init__(self):
        super().__init__()
        self.Backbone = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
        self.fc = nn.Linear(4, 6)
        self.ln = nn.LayerNorm(6)
        self.token_embedding = nn.Embedding(10, 6)
        self.positional_embedding = nn.Parameter(torch.randn(5, 6))
        self.text_projection = nn.Parameter(torch.randn(6, 3))
        self.in_proj_bias = nn.Parameter(torch.zeros(6))


def _authors_weight_decay(model, weight_decay=1e-4):
    """add_weight_decay: no decay for 1-d parameters and '.bias' names."""
    return {
        name: 0.0 if (p.dim() == 1 or name.endswith('.bias')) else
        weight_decay
        for name, p in model.named_parameters()
    }


def test_optimiser_groups_are_the_authors(cfg):
    model = _Named()
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    opt = wrapper.optimizer
    assert type(opt).__name__ == 'AdamW'
    ids = {id(p): n for n, p in model.named_parameters()}
    decay = {ids[id(p)]: g['weight_decay']
             for g in opt.param_groups for p in g['params']}
    assert decay == _authors_weight_decay(model)
    # one learning rate for every parameter (their backbone groups are
    # empty: DataParallel's 'module.' prefix, see the README)
    assert {g['lr'] for g in opt.param_groups} == {1e-5}


def test_one_cycle_is_torchs(cfg):
    """mmengine's OneCycleLR from the config, per iteration, against
    torch's OneCycleLR(max_lr=1e-5, steps_per_epoch, epochs=80,
    pct_start=0.1) (learning rates; torch also cycles beta1, which
    mmengine's does not, see the config's notes)."""
    epoch_length = 3
    param = nn.Parameter(torch.zeros(1))
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        wrapper = build_optim_wrapper(nn.ParameterList([param]),
                                      cfg.optim_wrapper)
    sched_cfg = dict(cfg.param_scheduler[0])
    for key in ('type', 'convert_to_iter_based'):
        sched_cfg.pop(key)
    assert cfg.param_scheduler[0]['type'] is CheckpointableOneCycleLR
    ours = CheckpointableOneCycleLR.build_iter_from_epoch(
        wrapper, epoch_length=epoch_length, **sched_cfg)
    ref_opt = torch.optim.AdamW([nn.Parameter(torch.zeros(1))], lr=1e-5)
    ref = torch.optim.lr_scheduler.OneCycleLR(
        ref_opt, max_lr=1e-5, steps_per_epoch=epoch_length, epochs=80,
        pct_start=0.1)
    for _ in range(80 * epoch_length):
        assert wrapper.optimizer.param_groups[0]['lr'] == pytest.approx(
            ref_opt.param_groups[0]['lr'], rel=1e-9, abs=1e-20)
        ours.step()
        ref.step()


def test_ema_is_the_authors_model_ema():
    """ModelEma(decay=0.998): every state-dict entry (parameters and
    float buffers) becomes 0.998 * ema + 0.002 * model after each step.
    (mmengine's EMA starts from the weights after the first step, theirs
    from those before it: one step at the warm-up's lr 4e-7 apart.)"""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    ema = ExponentialMovingAverage(model, momentum=0.002,
                                   update_buffers=True)
    theirs = None
    for _ in range(4):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        model.train()(torch.randn(8, 3))  # moves the BN statistics
        ema.update_parameters(model)
        state = model.state_dict()
        if theirs is None:
            theirs = {k: v.clone().float() for k, v in state.items()}
            continue
        for k, v in state.items():
            if v.dtype.is_floating_point:
                theirs[k] = 0.998 * theirs[k] + 0.002 * v
    for k, v in ema.module.state_dict().items():
        if v.dtype.is_floating_point:
            torch.testing.assert_close(v, theirs[k])


def test_inputs_are_in_0_1_and_448_without_flip(cfg):
    init_default_scope('mmpretrain')
    from mmpretrain.registry import MODELS, TRANSFORMS
    pre = MODELS.build(dict(type='ClsDataPreprocessor',
                            **{k: v for k, v in
                               cfg.data_preprocessor.items()
                               if k != 'num_classes'}))
    img = torch.randint(0, 256, (1, 3, 5, 5), dtype=torch.uint8)
    out = pre(dict(inputs=[img[0]]))['inputs']
    torch.testing.assert_close(out, img.flip(1).float() / 255)  # BGR->RGB
    names = [t['type'] if isinstance(t['type'], str) else t['type'].__name__
             for t in cfg.train_pipeline]
    assert names == ['LoadImageFromFile', 'Resize', 'Cutout', 'RandAugment',
                     'PackInputs']
    steps = [TRANSFORMS.build(t) for t in cfg.train_pipeline[1:4]]
    results = dict(img=np.random.randint(0, 256, (300, 500, 3), np.uint8))
    for t in steps:
        results = t(results)
    assert results['img'].shape == (448, 448, 3)
    assert cfg.train_cfg.val_begin == 11 and cfg.train_cfg.val_interval == 1


def test_model_settings(cfg):
    model = cfg.model
    assert model.train_text_encoder is True
    assert model.teacher.model_name == 'RN50-quickgelu'
    head = model.head
    assert (head.embed_dims, head.num_heads, head.head_dims,
            head.feedforward_channels, head.vsi_type) == (2048, 8, 512, 2048,
                                                          'cprfl')
    names = model.get('prompt_names')
    if cfg.num_classes == 20:  # VOC as the data set spells it (train.py)
        assert names == {'dining table': 'diningtable',
                         'potted plant': 'pottedplant',
                         'tv monitor': 'tvmonitor'}
    else:
        assert names is None
    hooks = [h['type'] if isinstance(h['type'], str) else h['type'].__name__
             for h in cfg.custom_hooks]
    assert hooks == ['VocabularyHook', 'EMAHook']
    assert cfg.custom_hooks[1]['momentum'] == pytest.approx(1 - 0.998)
    assert cfg.default_hooks.checkpoint.save_best == 'multi-label/lt/mAP'


def test_one_cycle_resumes_from_a_weights_only_checkpoint(tmp_path):
    """The scheduler's state survives torch.save + a weights-only load (what
    --resume does) and the resumed schedule continues the same lrs."""
    def build():
        opt = torch.optim.AdamW([nn.Parameter(torch.zeros(1))], lr=1e-5)
        return opt, CheckpointableOneCycleLR(opt, eta_max=1e-5, total_steps=20,
                                             pct_start=0.1)

    opt, sched = build()
    for _ in range(7):
        opt.step()
        sched.step()
    path = str(tmp_path / 'sched.pth')
    torch.save(dict(sched=sched.state_dict()), path)
    state = safe_torch_load(path, map_location='cpu')['sched']
    opt2, sched2 = build()
    sched2.load_state_dict(state)
    opt2.param_groups[0]['lr'] = opt.param_groups[0]['lr']
    for _ in range(10):
        opt.step()
        sched.step()
        opt2.step()
        sched2.step()
        assert opt2.param_groups[0]['lr'] == opt.param_groups[0]['lr']
