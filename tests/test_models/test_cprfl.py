# Copyright (c) mmovl contributors. All rights reserved.
import re
import warnings

import open_clip
import pytest
import torch
import torch.nn.functional as F
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from safetensors.torch import save_file

import mmovl  # noqa: F401
from mmovl.models import CPRFL, CPRFLHead
from mmovl.models.teachers.clip_teacher import register_open_clip_config

TINY = dict(
    embed_dim=16,
    vision_cfg=dict(image_size=32, layers=1, width=32, head_width=16,
                    patch_size=8),
    text_cfg=dict(context_length=16, vocab_size=49408, width=16, heads=1,
                  layers=1))
NAME = 'test-cprfl-tiny'
D0, M, D = 12, 16, 8


@pytest.fixture(scope='module')
def ckpt(tmp_path_factory):
    register_open_clip_config(NAME, TINY)
    torch.manual_seed(0)
    clip = open_clip.create_model(NAME)
    path = str(tmp_path_factory.mktemp('cprfl') / 'tiny_clip.safetensors')
    save_file({k: v.contiguous() for k, v in clip.state_dict().items()},
              path)
    return path


def _head(**kwargs):
    cfg = dict(type='CPRFLHead', in_channels=D0, text_channels=M,
               embed_dims=D, num_heads=2, head_dims=4,
               feedforward_channels=16, dropout=0.0)
    cfg.update(kwargs)
    torch.manual_seed(0)
    return MODELS.build(cfg).eval()


@pytest.mark.parametrize('bad', [torch.randn(5, M + 1), torch.randn(0, M),
                                 torch.randn(M), [[0.0] * M]],
                         ids=['width', 'empty', '1-d', 'list'])
def test_label_embeds_of_the_wrong_shape_are_named(bad):
    shape = re.escape(str(tuple(getattr(bad, 'shape', ()))))
    with pytest.raises(ValueError, match=rf'\(C, {M}\).*got {shape}'):
        _head().init_prompts(bad)


def _samples(labels):
    return [DataSample().set_gt_label(y) for y in labels]


def test_prompt_initialisation_is_the_formula():
    head = _head()
    w = torch.randn(5, M)
    p = head.init_prompts(w)
    lin1, lin2 = head.prompt_init[0], head.prompt_init[2]
    assert lin1.weight.shape == (int(0.5 * D), M)  # t = tau * d
    assert lin2.weight.shape == (D, int(0.5 * D))
    manual = F.gelu(w @ lin1.weight.t() + lin1.bias) @ lin2.weight.t() \
        + lin2.bias
    assert p.shape == (5, D)
    torch.testing.assert_close(p, manual)
    assert _head(tau=0.25).prompt_init[0].out_features == 2


def test_vsi_keeps_the_prompt_positions():
    head = _head()
    tokens, prompts = torch.randn(3, 4, D), torch.randn(5, D)
    out = head.refine(tokens, prompts)
    assert out.shape == (3, 5, D)
    for b in range(3):  # the same layer on one image's [F; P], by hand
        z = torch.cat([tokens[b], prompts])[None]
        torch.testing.assert_close(out[b], head.vsi(z)[0, 4:])
    # prompts attend to the visual tokens and to each other
    assert not torch.allclose(out, head.refine(tokens + 1, prompts))
    other = prompts.clone()
    other[0] += torch.randn(D)  # (a constant shift is normed away)
    changed = head.refine(tokens, other)
    assert not torch.allclose(changed[:, 1], out[:, 1])


def test_visual_tokens_from_the_last_stage():
    head = _head()
    fmap = torch.randn(2, D0, 3, 2)
    tokens = head.visual_tokens((torch.randn(2, 3, 1, 1), fmap))
    assert tokens.shape == (2, 6, D)
    torch.testing.assert_close(
        tokens[:, 4], head.visual_proj(fmap[:, :, 2, 0]))
    with pytest.raises(ValueError, match='feats'):
        head.visual_tokens(torch.randn(2, D0 + 1, 3, 2))


def test_visual_tokens_from_cls_and_patches():
    head = _head()
    cls_token, patches = torch.randn(2, D0), torch.randn(2, 5, D0)
    tokens = head.visual_tokens(((cls_token, patches), ))
    assert tokens.shape == (2, 6, D)  # CLS first, then the 5 patches
    torch.testing.assert_close(tokens[:, 0], head.visual_proj(cls_token))
    torch.testing.assert_close(tokens[:, 3], head.visual_proj(patches[:, 2]))
    # the bare pair (what CPRFL.extract_feat hands over) reads the same
    torch.testing.assert_close(head.visual_tokens((cls_token, patches)),
                               tokens)
    with pytest.raises(ValueError, match='cls_token'):
        head.visual_tokens(((cls_token, torch.randn(2, 5, D0 + 1)), ))


def test_scores_are_own_prompt_dot_products():
    head = _head()
    fmap, w = torch.randn(2, D0, 2, 2), torch.randn(5, M)
    logits = head(fmap, w)
    p = head.init_prompts(w)
    refined = head.refine(head.visual_tokens(fmap), p)
    brute = torch.empty(2, 5)
    for b in range(2):
        for i in range(5):
            brute[b, i] = torch.dot(refined[b, i], p[i])
    torch.testing.assert_close(logits, brute)
    scores = head.predict(fmap, w)
    assert len(scores) == 2
    torch.testing.assert_close(scores[1].pred_score, brute[1].sigmoid())


def test_gradients_reach_the_prompts_by_both_paths():
    head = _head()
    fmap, w = torch.randn(2, D0, 2, 2), torch.randn(5, M)
    tokens = head.visual_tokens(fmap)

    def prompt_grad(detach_in_score: bool, detach_in_vsi: bool):
        p = head.init_prompts(w)
        p.retain_grad()
        refined = head.refine(tokens, p.detach() if detach_in_vsi else p)
        score_p = p.detach() if detach_in_score else p
        (refined * score_p).sum(-1).sum().backward(retain_graph=True)
        return p.grad

    full = prompt_grad(False, False)
    via_vsi = prompt_grad(True, False)
    via_score = prompt_grad(False, True)
    assert via_vsi.abs().sum() > 0 and via_score.abs().sum() > 0
    torch.testing.assert_close(full, via_vsi + via_score)

    # the head's own forward takes both paths
    head.zero_grad()
    head(fmap, w).sum().backward()
    lin1 = head.prompt_init[0]
    assert lin1.weight.grad is not None and lin1.weight.grad.abs().sum() > 0


def _asl_by_hand(logits, target, gamma_pos=0.0, gamma_neg=4.0, mu=0.05):
    """METHODS' ASL per element: -[y (1-s)^g+ log s
    + (1-y) s~^g- log(1-s~)], s~ = max(s - mu, 0)."""
    s = 1 / (1 + torch.exp(-logits.double()))
    y = target.double()
    s_shift = torch.clamp(s - mu, min=0)
    pos = y * (1 - s)**gamma_pos * torch.log(s)
    neg = (1 - y) * s_shift**gamma_neg * torch.log(1 - s_shift)
    return -(pos + neg)


def test_loss_is_the_asymmetric_loss_of_the_paper():
    head = _head()
    fmap, w = torch.randn(4, D0, 2, 2), torch.randn(6, M)
    labels = [[0], [1, 5], [], [2, 3, 4]]
    losses = head.loss(fmap, w, _samples(labels))
    logits = head(fmap, w)
    target = torch.zeros(4, 6)
    for b, y in enumerate(labels):
        target[b, y] = 1
    # mmpretrain's AsymmetricLoss averages the elements (reduction='mean');
    # the paper's L sums over the labels: the same up to 1 / (B * C).
    expected = _asl_by_hand(logits, target).mean().float()
    torch.testing.assert_close(losses['loss_cls'], expected)
    # the formula on random logits, including large ones
    rnd, rnd_y = torch.randn(3, 7) * 4, (torch.rand(3, 7) > 0.5).float()
    torch.testing.assert_close(
        head.loss_module(rnd, rnd_y),
        _asl_by_hand(rnd, rnd_y).mean().float())
    # gt_score works as well; unknown labels do not
    samples = [DataSample().set_gt_score(t) for t in target]
    torch.testing.assert_close(head.loss(fmap, w, samples)['loss_cls'],
                               losses['loss_cls'])
    samples[0].set_gt_score(torch.full((6, ), -1.0))
    with pytest.raises(ValueError, match='unknown'):
        head.loss(fmap, w, samples)


def _cprfl(path, **kwargs):
    return MODELS.build(
        dict(
            type='CPRFL',
            backbone=dict(
                type='ResNet', depth=18, stem_channels=8, base_channels=8,
                out_indices=(2, 3)),
            head=dict(type='CPRFLHead', in_channels=64, embed_dims=D,
                      num_heads=2, head_dims=4, feedforward_channels=16),
            teacher=dict(type='CLIPTeacher', model_name=NAME,
                         checkpoint=path),
            **kwargs))


def test_classifier_builds_and_switches_vocabulary(ckpt):
    model = _cprfl(ckpt, train_text_encoder=False)
    assert isinstance(model, CPRFL) and isinstance(model.head, CPRFLHead)
    assert model.head.text_channels == 16  # the teacher's width
    # the teacher is no parameter of the model (only label embeddings)
    assert not any(n.startswith('teacher') for n, _ in
                   model.named_parameters())
    x = torch.randn(2, 3, 32, 32)
    with pytest.raises(RuntimeError, match='vocabulary'):
        model.predict(x)
    model.set_vocabulary(['cat', 'dog', 'bird'])
    embeds = model.label_embeds()
    assert model.label_embeds() is embeds  # cached
    torch.testing.assert_close(
        embeds, model.teacher.encode_labels(['cat', 'dog', 'bird']))
    model.eval()
    three = model.predict(x)
    model.set_vocabulary(['cat', 'dog', 'bird', 'fish', 'tree'])
    five = model.predict(x)
    assert three[0].pred_score.shape == (3, )
    assert five[0].pred_score.shape == (5, )
    # the prompts attend to each other: a label's score depends on the
    # rest of the vocabulary
    assert not torch.allclose(five[0].pred_score[:3], three[0].pred_score)
    model.train()
    losses = model(x, _samples([[0, 4], [2]]), mode='loss')
    losses['loss_cls'].backward()
    assert model.backbone.conv1.weight.grad is not None
    assert model(x, mode='tensor').shape == (2, 5)
    with pytest.raises(ValueError, match='duplicate'):
        model.set_vocabulary(['a', 'a'])


def test_pre_norm_vsi_is_the_pre_norm_formula():
    head = _head(vsi_type='encoder_layer', norm_first=True)
    tokens, prompts = torch.randn(2, 4, D), torch.randn(5, D)
    vsi = head.vsi
    z = torch.cat([tokens, prompts.expand(2, -1, -1)], dim=1)
    h = vsi.norm1(z)
    x = z + vsi.self_attn(h, h, h, need_weights=False)[0]
    ffn = vsi.linear2(torch.relu(vsi.linear1(vsi.norm2(x))))
    torch.testing.assert_close(head.refine(tokens, prompts),
                               (x + ffn)[:, 4:])
    # post-norm (the default) is a different function of the same weights
    vsi.norm_first = False
    assert not torch.allclose(head.refine(tokens, prompts), (x + ffn)[:, 4:])


def test_small_prompt_init_starts_a_residual_vsi_near_zero():
    """With prompt_init_std=0.02 a fresh residual (encoder-layer) head is
    undecided (sigmoid ~0.5) on any image and label; with PyTorch's default
    init of PI it starts confidently positive."""
    torch.manual_seed(0)
    head = MODELS.build(dict(type='CPRFLHead', in_channels=64,
                             text_channels=32, embed_dims=128, num_heads=4,
                             feedforward_channels=256,
                             vsi_type='encoder_layer',
                             prompt_init_std=0.02)).eval()
    feats = torch.randn(4, 64, 3, 3)
    labels = torch.nn.functional.normalize(torch.randn(10, 32), dim=-1)
    with torch.no_grad():
        assert head(feats, labels).abs().max() < 1.0  # sigmoid in .27-.73
        last = head.prompt_init[2]  # nn.Linear's default init, by hand
        torch.nn.init.kaiming_uniform_(last.weight, a=5**0.5)
        bound = 1 / last.in_features**0.5
        torch.nn.init.uniform_(last.bias, -bound, bound)
        assert head(feats, labels).abs().mean() > 3.0


def test_large_vocabulary_warns_once():
    head = _head()
    head.LARGE_VOCABULARY = 5  # the instance's threshold, to keep it tiny
    feats = torch.randn(1, D0, 2, 2)
    with torch.no_grad():
        with warnings.catch_warnings():
            warnings.simplefilter('error')
            head(feats, torch.randn(5, M))  # at the threshold: silent
        with pytest.warns(UserWarning, match='scores 6 labels'):
            head(feats, torch.randn(6, M))
        with warnings.catch_warnings():
            warnings.simplefilter('error')
            head(feats, torch.randn(7, M))  # once per head
