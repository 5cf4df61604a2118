# Copyright (c) mmovl contributors. All rights reserved.
"""mmovl's open_clip layer (mmovl.models.utils): public open_clip API only,
same numbers as open_clip's own modules."""
import logging
import os

import open_clip
import pytest
import torch
from mmpretrain.registry import MODELS

import mmovl  # noqa: F401
from mmovl.models.utils import (OPEN_CLIP_CONFIG_DIR,
                                load_open_clip_state_dict,
                                open_clip_vit_tokens,
                                quiet_open_clip_random_init,
                                register_open_clip_config)

NAME = 'mmovl-test-layer-vit'
CFG = dict(
    embed_dim=16,
    vision_cfg=dict(image_size=32, layers=2, width=32, head_width=16,
                    patch_size=8),
    text_cfg=dict(context_length=16, vocab_size=49408, width=32, heads=2,
                  layers=1))


def test_shipped_architectures_are_registered():
    names = sorted(p[:-len('.json')] for p in os.listdir(OPEN_CLIP_CONFIG_DIR)
                   if p.endswith('.json'))
    assert 'mmovl-toy-vit' in names
    assert set(names) <= set(open_clip.list_models())


def test_register_through_add_model_config(tmp_path):
    register_open_clip_config(NAME, CFG)
    register_open_clip_config(NAME, dict(CFG))  # the same again: a no-op
    assert NAME in open_clip.list_models()
    cfg = open_clip.get_model_config(NAME)
    assert cfg['embed_dim'] == 16 and cfg['vision_cfg']['layers'] == 2
    # built, tokenized, and still there after open_clip rescans its folders
    open_clip.add_model_config(tmp_path)
    assert open_clip.get_model_config(NAME) == cfg
    clip = open_clip.create_model(NAME)
    assert clip.visual.conv1.out_channels == 32
    assert open_clip.get_tokenizer(NAME)(['a cat']).shape == (1, 16)
    other = dict(CFG, embed_dim=8)
    with pytest.raises(ValueError, match='different config'):
        register_open_clip_config(NAME, other)
    with pytest.raises(ValueError, match='different config'):
        register_open_clip_config('ViT-B-16', CFG)
    with pytest.raises(ValueError, match='lacks'):
        register_open_clip_config('mmovl-test-bad', dict(embed_dim=8))
    for bad in ('a/b', ''):
        with pytest.raises(ValueError, match='cannot name'):
            register_open_clip_config(bad, CFG)


def _manual_tokens(visual, x):
    """The tower's own steps up to ln_post, from its public parts."""
    x = visual.conv1(x)
    x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)
    cls = visual.class_embedding.view(1, 1, -1).expand(x.shape[0], -1, -1)
    x = torch.cat([cls.to(x.dtype), x], dim=1)
    x = x + visual.positional_embedding.to(x.dtype)
    x = visual.patch_dropout(x)
    x = visual.ln_pre(x)
    x = visual.transformer(x)
    x = visual.ln_post(x)
    return x[:, 0], x[:, 1:]


@pytest.mark.parametrize('name', [NAME, 'mmovl-toy-vit'])
def test_vit_tokens_equal_the_towers_own_steps(name):
    register_open_clip_config(NAME, CFG)
    torch.manual_seed(0)
    visual = open_clip.create_model(name).visual.eval()
    size = visual.image_size
    size = (size, size) if isinstance(size, int) else tuple(size)
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        cls, patches = open_clip_vit_tokens(visual, x)
        ref_cls, ref_patches = _manual_tokens(visual, x)
        pooled = visual(x)  # open_clip's forward pools the class token
    assert torch.equal(cls, ref_cls) and torch.equal(patches, ref_patches)
    assert torch.equal(cls @ visual.proj, pooled)
    grid = visual.grid_size
    assert patches.shape == (2, grid[0] * grid[1], visual.conv1.out_channels)


@pytest.mark.parametrize('out_type', ['cls_patches', 'cls_token', 'featmap',
                                      'avg_featmap'])
def test_backbone_outputs(out_type):
    register_open_clip_config(NAME, CFG)
    torch.manual_seed(0)
    net = MODELS.build(dict(type='OpenCLIPViT', model_name=NAME,
                            out_type=out_type)).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        out = net(x)[-1]
        cls, patches = _manual_tokens(net.visual, x)
    expected = dict(
        cls_patches=(cls, patches), cls_token=cls,
        avg_featmap=patches.mean(dim=1),
        featmap=patches.transpose(1, 2).reshape(2, 32, 4, 4))[out_type]
    if out_type == 'cls_patches':
        assert torch.equal(out[0], expected[0])
        assert torch.equal(out[1], expected[1])
    else:
        assert torch.equal(out, expected)


def test_load_state_dict_checks_and_reshapes():
    register_open_clip_config(NAME, CFG)
    torch.manual_seed(0)
    src = open_clip.create_model(NAME)
    state = {k: v.clone() for k, v in src.state_dict().items()}
    state['logit_scale'] = state['logit_scale'].reshape(1)  # older layout
    dst = open_clip.create_model(NAME)
    load_open_clip_state_dict(dst, state, 'w.pt', NAME)
    assert all(torch.equal(v, src.state_dict()[k])
               for k, v in dst.state_dict().items())
    bad = dict(state)
    bad.pop('ln_final.weight')
    bad['visual.conv1.weight'] = torch.zeros(1)
    with pytest.raises(ValueError) as info:
        load_open_clip_state_dict(dst, bad, 'w.pt', NAME)
    assert str(info.value).startswith(
        f"CLIP checkpoint w.pt does not fit the open_clip architecture "
        f"'{NAME}': missing keys: ln_final.weight; shape mismatch: "
        'visual.conv1.weight (1,) (expected (32, 3, 8, 8))')


def test_quieting_is_scoped(caplog):
    root = logging.getLogger()
    filters = list(root.filters)
    with caplog.at_level(logging.WARNING):
        with quiet_open_clip_random_init():
            logging.warning('Model x initialized randomly.')
            logging.warning('something else')
            assert len(root.filters) == len(filters) + 1
        logging.warning('Model y initialized randomly.')
    messages = [r.getMessage() for r in caplog.records]
    assert 'Model x initialized randomly.' not in messages
    assert 'something else' in messages
    assert 'Model y initialized randomly.' in messages
    assert root.filters == filters
    with pytest.raises(KeyError):
        with quiet_open_clip_random_init():
            raise KeyError('boom')
    assert root.filters == filters
