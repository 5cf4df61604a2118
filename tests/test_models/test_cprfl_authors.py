# Copyright (c) mmovl contributors. All rights reserved.
"""CPRFL as its authors' code computes it (github jiexuanyan/CPRFL): the
head against a re-implementation of their model's forward
(``src/models/build_model_TF.py``, ``src/models/TF.py``, ``config.py``),
written here from reading that code, given the same weights; the widths of
the default head; the trainable CLIP text tower of the classifier."""
import math

import open_clip
import pytest
import torch
import torch.nn as nn
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from safetensors.torch import save_file

import mmovl  # noqa: F401
from mmovl.models.teachers.clip_teacher import register_open_clip_config

TINY = dict(
    embed_dim=16,
    vision_cfg=dict(image_size=32, layers=1, width=32, head_width=16,
                    patch_size=8),
    text_cfg=dict(context_length=16, vocab_size=49408, width=16, heads=1,
                  layers=1))
NAME = 'test-cprfl-authors-tiny'


# -- the authors' computation, re-implemented ---------------------------------
class AuthorsAttention(nn.Module):
    """TF.py ``Attention``: to_qkv without bias, chunked q | k | v, heads
    split as (h d), softmax(q k^T * dim_head^-0.5) v, to_out Linear +
    Dropout."""

    def __init__(self, dim, heads, dim_head):
        super().__init__()
        self.heads, self.scale = heads, dim_head**-0.5
        self.to_qkv = nn.Linear(dim, 3 * heads * dim_head, bias=False)
        self.to_out = nn.Sequential(nn.Linear(heads * dim_head, dim),
                                    nn.Dropout(0.0))

    def forward(self, x):
        b, n, _ = x.shape
        q, k, v = self.to_qkv(x).chunk(3, dim=-1)
        q, k, v = (t.view(b, n, self.heads, -1).transpose(1, 2)
                   for t in (q, k, v))
        dots = torch.einsum('bhid,bhjd->bhij', q, k) * self.scale
        out = torch.einsum('bhij,bhjd->bhid', dots.softmax(dim=-1), v)
        return self.to_out(out.transpose(1, 2).reshape(b, n, -1))


class AuthorsBlock(nn.Module):
    """TF.py ``Transformer`` of depth 1: ``x = attn(x); x = ff(x)`` with
    ``PreNorm`` (LayerNorm, then the function) and no residual."""

    def __init__(self, dim, heads, dim_head, mlp_dim):
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim), AuthorsAttention(
            dim, heads, dim_head)
        self.norm2 = nn.LayerNorm(dim)
        self.ff = nn.Sequential(nn.Linear(dim, mlp_dim), nn.GELU(),
                                nn.Dropout(0.0), nn.Linear(mlp_dim, dim),
                                nn.Dropout(0.0))

    def forward(self, x):
        x = self.attn(self.norm1(x))
        return self.ff(self.norm2(x))


def authors_scores(fmap, text_features, fc, label_emb, block):
    """``MyModel.forward`` after the backbone and the text encoder."""
    batch = fmap.shape[0]
    attr = label_emb(text_features.float()).unsqueeze(0).expand(
        batch, text_features.shape[0], -1)
    feature_maps = fmap.view(batch, fmap.shape[1], -1).transpose(-1, -2)
    feature = block(torch.cat((fc(feature_maps), attr), 1))
    classify_feature = feature[:, -attr.size(1):, :].unsqueeze(-2)
    return torch.matmul(classify_feature, attr[0].unsqueeze(-1)).squeeze()


def _copy_into_authors(head, dim, heads, dim_head, mlp_dim, in_ch, text_ch,
                       hidden):
    fc = nn.Linear(in_ch, dim)
    label_emb = nn.Sequential(nn.Linear(text_ch, hidden), nn.Identity(),
                              nn.GELU(), nn.Linear(hidden, dim))
    block = AuthorsBlock(dim, heads, dim_head, mlp_dim)
    pairs = [(fc, head.visual_proj), (label_emb[0], head.prompt_init[0]),
             (label_emb[3], head.prompt_init[2]),
             (block.norm1, head.vsi.norm1), (block.attn.to_qkv, head.vsi.qkv),
             (block.attn.to_out[0], head.vsi.out_proj),
             (block.norm2, head.vsi.norm2), (block.ff[0], head.vsi.ffn[0]),
             (block.ff[3], head.vsi.ffn[3])]
    for theirs, ours in pairs:
        theirs.load_state_dict(ours.state_dict())
    return fc.eval(), label_emb.eval(), block.eval()


def test_head_is_the_authors_computation():
    dim, heads, dim_head, mlp, in_ch, text_ch = 16, 2, 12, 24, 10, 6
    torch.manual_seed(0)
    head = MODELS.build(
        dict(type='CPRFLHead', in_channels=in_ch, text_channels=text_ch,
             embed_dims=dim, num_heads=heads, head_dims=dim_head,
             feedforward_channels=mlp)).eval()
    for p in head.parameters():  # away from the default init's symmetry
        p.data.normal_(std=0.5)
    fc, label_emb, block = _copy_into_authors(head, dim, heads, dim_head,
                                              mlp, in_ch, text_ch, dim // 2)
    fmap, text = torch.randn(3, in_ch, 2, 3), torch.randn(5, text_ch)
    with torch.no_grad():
        expected = authors_scores(fmap, text, fc, label_emb, block)
        torch.testing.assert_close(head(fmap, text), expected)
        # today's standard encoder layer on the same shapes is another
        # function: its refined prompt keeps p itself (the residual)
        enc = MODELS.build(
            dict(type='CPRFLHead', in_channels=in_ch, text_channels=text_ch,
                 embed_dims=dim, num_heads=heads, feedforward_channels=mlp,
                 vsi_type='encoder_layer', dropout=0.0)).eval()
        enc.visual_proj.load_state_dict(head.visual_proj.state_dict())
        enc.prompt_init.load_state_dict(head.prompt_init.state_dict())
        assert not torch.allclose(enc(fmap, text), expected, atol=1e-3)


def test_the_block_has_no_residual_and_no_bias_in_qkv():
    torch.manual_seed(0)
    block = MODELS.build(dict(type='CPRFLVSIBlock', embed_dims=8, num_heads=2,
                              head_dims=3, feedforward_channels=5,
                              dropout=0.0))
    assert block.qkv.bias is None
    z = torch.randn(2, 4, 8)
    # no residual: zeroing the FFN's output layer zeroes the output
    nn.init.zeros_(block.ffn[3].weight)
    nn.init.zeros_(block.ffn[3].bias)
    assert torch.count_nonzero(block(z)) == 0
    # dropout 0.1 acts after the attention's output projection and in the
    # FFN, in training only
    block = MODELS.build(dict(type='CPRFLVSIBlock', embed_dims=8, num_heads=2,
                              head_dims=3, feedforward_channels=5))
    assert [m.p for m in block.modules()
            if isinstance(m, nn.Dropout)] == [0.1, 0.1, 0.1]
    block.eval()
    torch.testing.assert_close(block(z), block(z))


def test_default_head_has_the_authors_widths():
    """config.py: feature_d 2048, 8 heads of dim_head 512, mlp_dim 2048,
    expand 0.5 (PI hidden 1024) on 1024-d CLIP RN50 text features."""
    head = MODELS.build(dict(type='CPRFLHead'))
    shapes = {n: tuple(p.shape) for n, p in head.named_parameters()}
    assert shapes == {
        'visual_proj.weight': (2048, 2048), 'visual_proj.bias': (2048, ),
        'prompt_init.0.weight': (1024, 1024), 'prompt_init.0.bias': (1024, ),
        'prompt_init.2.weight': (2048, 1024), 'prompt_init.2.bias': (2048, ),
        'vsi.norm1.weight': (2048, ), 'vsi.norm1.bias': (2048, ),
        'vsi.qkv.weight': (3 * 8 * 512, 2048),
        'vsi.out_proj.weight': (2048, 4096), 'vsi.out_proj.bias': (2048, ),
        'vsi.norm2.weight': (2048, ), 'vsi.norm2.bias': (2048, ),
        'vsi.ffn.0.weight': (2048, 2048), 'vsi.ffn.0.bias': (2048, ),
        'vsi.ffn.3.weight': (2048, 2048), 'vsi.ffn.3.bias': (2048, ),
    }
    assert type(head.loss_module).__name__ == 'DetachedAsymmetricLoss'
    assert math.isclose(head.vsi.head_dims**-0.5, 512**-0.5)


# -- the trainable text tower ---------------------------------------------
@pytest.fixture(scope='module')
def ckpt(tmp_path_factory):
    register_open_clip_config(NAME, TINY)
    torch.manual_seed(0)
    clip = open_clip.create_model(NAME)
    path = str(tmp_path_factory.mktemp('cprfl') / 'tiny_clip.safetensors')
    save_file({k: v.contiguous() for k, v in clip.state_dict().items()},
              path)
    return path


def _model(path, **kwargs):
    torch.manual_seed(0)
    return MODELS.build(
        dict(
            type='CPRFL',
            backbone=dict(
                type='ResNet', depth=18, stem_channels=8, base_channels=8,
                out_indices=(3, )),
            head=dict(type='CPRFLHead', in_channels=64, embed_dims=8,
                      num_heads=2, head_dims=4, feedforward_channels=16),
            teacher=dict(type='CLIPTeacher', model_name=NAME,
                         checkpoint=path),
            **kwargs))


def _clip_text(path, texts):
    """open_clip's own encode_text of the checkpoint, unnormalised."""
    from safetensors.torch import load_file
    clip = open_clip.create_model(NAME)
    clip.load_state_dict(load_file(path))
    with torch.no_grad():
        return clip.encode_text(open_clip.get_tokenizer(NAME)(texts))


def test_text_tower_trains_with_the_model(ckpt):
    model = _model(ckpt)
    assert model.teacher is None  # its image tower is not kept
    names = [n for n, p in model.named_parameters()
             if n.startswith('text_encoder.')]
    assert 'text_encoder.token_embedding.weight' in names
    assert 'text_encoder.text_projection' in names
    assert all(p.requires_grad for p in model.parameters())
    model.init_weights()  # as the runner does: the CLIP weights stay
    model.set_vocabulary(['cat', 'dining table'])
    # raw CLIP features of 'a photo of a {}.', recomputed in training
    expected = _clip_text(ckpt, ['a photo of a cat.',
                                 'a photo of a dining table.'])
    embeds = model.label_embeds()
    torch.testing.assert_close(embeds, expected)
    assert embeds.requires_grad
    x = torch.randn(2, 3, 32, 32)
    samples = [DataSample().set_gt_label(y) for y in ([0], [1])]
    model(x, samples, mode='loss')['loss_cls'].backward()
    for name in names:
        grad = model.get_parameter(name).grad
        assert grad is not None and grad.abs().sum() > 0, name


def test_eval_caches_per_vocabulary_and_weights(ckpt):
    model = _model(ckpt).eval()
    model.set_vocabulary(['cat', 'dog'])
    first = model.label_embeds()
    assert model.label_embeds() is first
    assert not first.requires_grad
    # a new vocabulary, or changed weights (a step, EMA's swap, a load),
    # is encoded again through the tower
    with torch.no_grad():
        model.text_encoder.ln_final.bias.add_(0.5)
    changed = model.label_embeds()
    assert changed is not first and not torch.allclose(changed, first)
    model.set_vocabulary(['cat', 'dog', 'bird'])
    assert model.label_embeds().shape == (3, 16)
    # the trained tower names any label (open vocabulary): prediction of
    # an unseen name goes through the changed weights
    out = model.predict(torch.randn(1, 3, 32, 32))
    assert out[0].pred_score.shape == (3, )
    tuned = model.label_embeds()[2]
    assert not torch.allclose(tuned, _clip_text(ckpt, ['a photo of a bird.'
                                                       ])[0])
    # a checkpoint of the model loads back strictly, tower included
    other = _model(ckpt).eval()
    other.load_state_dict(model.state_dict(), strict=True)
    other.set_vocabulary(['cat', 'dog', 'bird'])
    torch.testing.assert_close(other.label_embeds(), model.label_embeds())


def test_prompt_names_and_the_frozen_teacher(ckpt):
    model = _model(ckpt, prompt_names={'dining table': 'diningtable'})
    model.set_vocabulary(['dining table', 'cat'])
    torch.testing.assert_close(
        model.label_embeds(),
        _clip_text(ckpt, ['a photo of a diningtable.', 'a photo of a cat.']))
    frozen = _model(ckpt, train_text_encoder=False,
                    prompt_names={'dining table': 'diningtable'})
    assert frozen.text_encoder is None
    assert not any('text_encoder' in n or 'teacher' in n
                   for n, _ in frozen.named_parameters())
    frozen.set_vocabulary(['dining table', 'cat'])
    # the teacher's unit vectors, cached
    expected = nn.functional.normalize(_clip_text(
        ckpt, ['a photo of a diningtable.', 'a photo of a cat.']), dim=-1)
    torch.testing.assert_close(frozen.label_embeds(), expected)
    assert frozen.label_embeds() is frozen.label_embeds()


def test_zsl_scores_are_the_unseen_vocabulary_alone(ckpt):
    """zsl_score: the model run with the unseen labels as its whole
    vocabulary (the prompts attend to each other: not a slice)."""
    model = _model(ckpt).eval()
    x = torch.randn(2, 3, 32, 32)
    model.set_vocabulary(['cat', 'dog', 'bird'])
    model.set_zsl_vocabulary(['dog', 'bird'])
    out = model.predict(x)
    assert out[0].pred_score.shape == (3, )
    model.set_zsl_vocabulary(None)
    model.set_vocabulary(['dog', 'bird'])
    alone = model.predict(x)
    for o, a in zip(out, alone):
        torch.testing.assert_close(o.zsl_score, a.pred_score)
    assert not torch.allclose(out[0].zsl_score, out[0].pred_score[1:])
    assert 'zsl_score' not in alone[0]
