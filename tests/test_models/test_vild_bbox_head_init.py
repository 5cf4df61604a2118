# Copyright (c) mmovl contributors. All rights reserved.
"""ViLDBBoxHead.init_weights: the ViLD-ensemble image tower is initialised
as mmdet's ConvFCBBoxHead initialises its own shared branch, norms
included (configs/vild/vild_ens_r50_fpn_32xb8_180k_lvis_v1_base.py)."""
import math

import pytest
import torch
import torch.nn as nn

from mmovl.models import ViLDBBoxHead

CONV_CHANNELS, FC_CHANNELS, IN_CHANNELS = 32, 48, 16


def _tower_head(norm_cfg):
    torch.manual_seed(0)
    head = ViLDBBoxHead(
        in_channels=IN_CHANNELS,
        roi_feat_size=7,
        num_shared_convs=2,
        num_shared_fcs=2,
        conv_out_channels=CONV_CHANNELS,
        fc_out_channels=FC_CHANNELS,
        norm_cfg=norm_cfg,
        embed_dim=8,
        num_classes=3,
        image_branch='tower')
    head.init_weights()
    return head


def _kaiming_normal_fan_out_std(conv):
    """mmcv's ConvModule initialises its conv with ``kaiming_init``: normal,
    mode 'fan_out', ReLU gain."""
    out_channels, _, kh, kw = conv.weight.shape
    return math.sqrt(2.0 / (out_channels * kh * kw))


def _check_xavier_uniform(fc):
    fan_out, fan_in = fc.weight.shape
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    w = fc.weight.detach()
    assert w.abs().max() <= bound + 1e-6
    # uniform on [-bound, bound]: std bound / sqrt(3) (PyTorch's default
    # Linear init has std 1 / sqrt(3 fan_in), 2.8x smaller here)
    assert w.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.1)
    assert torch.equal(fc.bias.detach(), torch.zeros_like(fc.bias))


@pytest.mark.parametrize('norm_type', ['SyncBN', 'BN', None])
def test_tower_initialised_like_mmdet_shared_branch(norm_type):
    norm_cfg = None if norm_type is None else dict(type=norm_type)
    head = _tower_head(norm_cfg)
    assert len(head.image_convs) == len(head.shared_convs) == 2
    assert len(head.image_fcs) == len(head.shared_fcs) == 2
    for branch in ('shared_convs', 'image_convs'):
        for module in getattr(head, branch):
            conv = module.conv
            # the conv: Kaiming (ConvModule's own init, which mmdet's
            # ConvFCBBoxHead leaves to its shared convs), not Xavier, whose
            # std would be sqrt(2) times smaller for these shapes
            expected = _kaiming_normal_fan_out_std(conv)
            assert conv.weight.std().item() == pytest.approx(
                expected, rel=0.1), branch
            if conv.bias is not None:
                assert torch.equal(conv.bias.detach(),
                                   torch.zeros_like(conv.bias)), branch
            if norm_cfg is None:
                assert not module.with_norm
                continue
            norm = module.norm
            assert isinstance(norm, nn.modules.batchnorm._BatchNorm)
            if norm_type == 'SyncBN':
                assert isinstance(norm, nn.SyncBatchNorm)
            # the norms keep their init: weight 1, bias 0
            assert torch.equal(norm.weight.detach(),
                               torch.ones_like(norm.weight)), branch
            assert torch.equal(norm.bias.detach(),
                               torch.zeros_like(norm.bias)), branch
    # the fcs and the projections: Xavier uniform with zero bias, as
    # mmdet's init_cfg gives its shared fcs
    for fc in list(head.shared_fcs) + list(head.image_fcs) + [
            head.text_proj, head.image_proj
    ]:
        _check_xavier_uniform(fc)
    # the tower is its own copy: same init, different values
    assert not torch.equal(head.image_convs[0].conv.weight,
                           head.shared_convs[0].conv.weight)
    # box regression keeps mmdet's Normal(0, 0.001)
    assert head.fc_reg.weight.std().item() == pytest.approx(0.001, rel=0.1)


def test_tower_with_norm_runs_after_init():
    head = _tower_head(dict(type='BN'))
    head.set_class_embeddings(
        torch.nn.functional.normalize(torch.randn(3, 8), dim=-1))
    head.eval()
    with torch.no_grad():
        image = head.image_embeds(torch.randn(4, IN_CHANNELS, 7, 7))
    assert image.shape == (4, 8) and torch.isfinite(image).all()
