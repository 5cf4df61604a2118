# Copyright (c) mmovl contributors. All rights reserved.
import open_clip
import pytest
import torch
import torch.nn.functional as F
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from safetensors.torch import save_file

import mmovl  # noqa: F401
from mmovl.models import RankLoss
from mmovl.models.teachers.clip_teacher import register_open_clip_config

TINY = dict(
    embed_dim=16,
    vision_cfg=dict(image_size=32, layers=2, width=32, head_width=16,
                    patch_size=8),
    text_cfg=dict(context_length=16, vocab_size=49408, width=16, heads=1,
                  layers=1))
NAME = 'test-mkt-tiny'


@pytest.fixture(scope='module')
def ckpt(tmp_path_factory):
    register_open_clip_config(NAME, TINY)
    torch.manual_seed(0)
    clip = open_clip.create_model(NAME)
    path = str(tmp_path_factory.mktemp('mkt') / 'tiny_clip.safetensors')
    save_file({k: v.contiguous() for k, v in clip.state_dict().items()},
              path)
    return path, clip


def _mkt(path, **kwargs):
    cfg = dict(
        type='MKT',
        backbone=dict(type='OpenCLIPViT', model_name=NAME, checkpoint=path,
                      frozen_stages=1),
        head=dict(type='TwoStreamHead', topk=3, normalize_embeds=False),
        teacher=dict(type='CLIPTeacher', model_name=NAME, checkpoint=path))
    cfg.update(kwargs)
    return MODELS.build(cfg)


def _samples(labels, num_classes):
    return [DataSample().set_gt_label(y) for y in labels]


def test_student_starts_from_the_teacher(ckpt):
    path, clip = ckpt
    model = _mkt(path)
    for k, v in clip.visual.state_dict().items():
        torch.testing.assert_close(model.backbone.visual.state_dict()[k], v)
    # the head's projection is CLIP's visual projection, so the student's
    # projected CLS feature is exactly the teacher's raw image feature
    x = torch.randn(2, 3, 32, 32)
    e_cls, _ = model.head.embed(model.extract_feat(x))
    torch.testing.assert_close(e_cls, clip.encode_image(x), rtol=1e-5,
                               atol=1e-5)
    # frozen: embeddings and the first block; trainable: the rest
    bb = model.backbone.visual
    assert not bb.conv1.weight.requires_grad
    assert not any(
        p.requires_grad for p in bb.transformer.resblocks[0].parameters())
    assert all(
        p.requires_grad for p in bb.transformer.resblocks[1].parameters())
    assert not any(p.requires_grad for p in model.teacher.parameters())


def test_clip_projection_is_kept_frozen_for_the_head(ckpt):
    """The backbone's outputs are before CLIP's projection (the head has
    its own copy), so ``visual.proj`` must not train: DDP fails on a
    trainable parameter that gets no gradient. It stays, as loaded, under
    its key, so checkpoints written before and after load alike."""
    path, clip = ckpt
    model = _mkt(path)
    model.train()
    proj = model.backbone.proj
    assert not proj.requires_grad
    torch.testing.assert_close(proj, clip.visual.proj, rtol=0, atol=0)
    torch.testing.assert_close(model.head.proj.weight, clip.visual.proj.t(),
                               rtol=0, atol=0)
    model.set_vocabulary(['a', 'b', 'c'])
    losses = model.loss(torch.randn(2, 3, 32, 32), _samples([[0], [1]], 3))
    model.parse_losses(losses)[0].backward()
    assert proj.grad is None
    assert model.head.proj.weight.grad is not None
    # a checkpoint with the key (any mmovl MKT checkpoint) loads strictly
    state = {k: v.clone() for k, v in model.state_dict().items()}
    assert 'backbone.visual.proj' in state
    state['backbone.visual.proj'] += 1
    fresh = _mkt(path)
    fresh.load_state_dict(state, strict=True)
    torch.testing.assert_close(fresh.backbone.proj,
                               clip.visual.proj + 1, rtol=0, atol=0)
    assert not fresh.backbone.proj.requires_grad


def test_loss_is_rank_plus_distillation(ckpt):
    path, clip = ckpt
    model = _mkt(path, distill_weight=0.5)
    names = ['red circle', 'blue square', 'green cross', 'cat']
    model.set_vocabulary(names)
    with torch.no_grad():
        model.head.init_proj(torch.randn_like(model.backbone.proj))
    x = torch.randn(3, 3, 32, 32)
    labels = [[0], [1, 2], [3]]
    losses = model.loss(x, _samples(labels, 4))

    # independent computation
    feats = model.extract_feat(x)
    scores = model.head(feats, model.teacher.encode_labels(names))
    target = torch.zeros(3, 4)
    for i, y in enumerate(labels):
        target[i, y] = 1
    torch.testing.assert_close(losses['loss_cls'], RankLoss()(scores,
                                                              target))
    e_cls = model.head.embed(feats)[0]
    with torch.no_grad():
        teacher_raw = clip.encode_image(x)
    torch.testing.assert_close(losses['loss_distill'],
                               0.5 * F.l1_loss(e_cls, teacher_raw))

    # cached teacher embeddings give the same losses, without the teacher
    samples = _samples(labels, 4)
    for s, t in zip(samples, teacher_raw):
        s.set_field(t, 'teacher_embed')
    model.teacher.encode_image = None  # would fail if it were called
    cached = model.loss(x, samples)
    for key in losses:
        torch.testing.assert_close(cached[key], losses[key])


def test_vocabulary_is_data(ckpt):
    path, _ = ckpt
    model = _mkt(path, distill_weight=0.0)
    x = torch.randn(2, 3, 32, 32)
    with pytest.raises(RuntimeError, match='vocabulary'):
        model.predict(x)
    model.set_vocabulary(['a', 'b', 'c'])
    three = model.predict(x)
    model.set_vocabulary(['a', 'b', 'c', 'd', 'e'])
    five = model.predict(x)
    assert three[0].pred_score.shape == (3, )
    assert five[0].pred_score.shape == (5, )
    assert 'loss_distill' not in model.loss(x, _samples([[0], [1]], 5))
    with pytest.raises(ValueError, match='duplicate'):
        model.set_vocabulary(['a', 'a'])


def test_layer_wise_lr_decay(ckpt):
    """MMPretrain's layer-decay constructor scales lrs by block depth."""
    from mmpretrain.engine.optimizers import \
        LearningRateDecayOptimWrapperConstructor as Constructor
    path, _ = ckpt
    model = _mkt(path, backbone=dict(type='OpenCLIPViT', model_name=NAME,
                                     checkpoint=path, frozen_stages=0))
    optim = Constructor(
        dict(type='OptimWrapper',
             optimizer=dict(type='AdamW', lr=1.0, weight_decay=0.05)),
        dict(layer_decay_rate=0.5))(model)
    lr = {g['param_name']: g['lr'] for g in optim.optimizer.param_groups}
    # 2 blocks: depths 0 (stem), 1, 2 (blocks), 3 (after): lr = 0.5^(3-d)
    assert lr['backbone.visual.conv1.weight'] == 0.5**3
    assert lr['backbone.visual.transformer.resblocks.0.ln_1.weight'] == \
        0.5**2
    assert lr['backbone.visual.transformer.resblocks.1.ln_1.weight'] == 0.5
    assert lr['backbone.visual.ln_post.weight'] == 1.0
    head_names = [n for n in lr if n.startswith('head.')]
    assert head_names and all(lr[n] == 1.0 for n in head_names)


def test_backbone_out_types_are_views_of_the_same_tokens(ckpt):
    path, _ = ckpt
    nets = {t: MODELS.build(dict(type='OpenCLIPViT', model_name=NAME,
                                 checkpoint=path, out_type=t)).eval()
            for t in ('cls_patches', 'cls_token', 'featmap', 'avg_featmap')}
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        (cls_token, patches), = nets['cls_patches'](x)
        (only_cls, ), (fmap, ), (avg, ) = (
            nets[t](x) for t in ('cls_token', 'featmap', 'avg_featmap'))
    assert patches.shape == (2, 16, 32)  # 4 x 4 patches of 8 px, width 32
    torch.testing.assert_close(only_cls, cls_token)
    torch.testing.assert_close(avg, patches.mean(dim=1))
    assert fmap.shape == (2, 32, 4, 4)
    for r in range(4):  # row-major patch order, by hand
        for c in range(4):
            torch.testing.assert_close(fmap[:, :, r, c], patches[:, 4 * r + c])
    with pytest.raises(ValueError, match='out_type'):
        MODELS.build(dict(type='OpenCLIPViT', model_name=NAME,
                          out_type='tokens'))


def test_cls_data_preprocessor_builds_under_the_mmdet_scope():
    # once a detector is built, mmdet is the default scope of the process
    from mmengine.registry import DefaultScope
    from mmpretrain.models import ClsDataPreprocessor

    from mmovl.models.classifiers.utils import build_cls_data_preprocessor
    with DefaultScope.overwrite_default_scope('mmdet'):
        pre = build_cls_data_preprocessor(dict(mean=[1, 2, 3], std=[4, 5, 6]))
    assert type(pre) is ClsDataPreprocessor
    assert pre.mean.flatten().tolist() == [1, 2, 3]


def _two_stream_by_hand(model, x, label_embeds, topk=3):
    """MKT's scores written out as the official ``CLIPVIT.forward`` does:
    raw projected tokens, top-k mean of the patch scores, each stream
    normalised across the labels given, then averaged."""
    cls, patches = model.extract_feat(x)
    proj = model.head.proj.weight.t()
    dist_feat, pred_feat = cls @ proj, patches @ proj
    score1 = torch.topk(pred_feat @ label_embeds.t(), k=topk,
                        dim=1)[0].mean(dim=1)
    score2 = dist_feat @ label_embeds.t()
    score1 = score1 / score1.norm(dim=-1, keepdim=True)
    score2 = score2 / score2.norm(dim=-1, keepdim=True)
    return (score1 + score2) / 2


def test_zsl_scores_come_from_the_unseen_vocabulary_alone(ckpt):
    """As the official test loop: the unseen labels alone are scored
    (normalised across them), not sliced from the all-label scores."""
    path, _ = ckpt
    torch.manual_seed(3)
    model = _mkt(path).eval()
    with torch.no_grad():
        model.head.init_proj(torch.randn_like(model.backbone.proj))
    seen, unseen = ['red circle', 'blue square', 'cat'], ['dog', 'yellow star']
    model.set_vocabulary(seen + unseen)
    x = torch.randn(4, 3, 32, 32)
    assert 'zsl_score' not in model.predict(x)[0]
    model.set_zsl_vocabulary(unseen)
    with torch.no_grad():
        preds = model.predict(x)
        all_scores = _two_stream_by_hand(
            model, x, model.teacher.encode_labels(seen + unseen))
        zsl_scores = _two_stream_by_hand(model, x,
                                         model.teacher.encode_labels(unseen))
    got = torch.stack([p.pred_score for p in preds])
    got_zsl = torch.stack([p.zsl_score for p in preds])
    torch.testing.assert_close(got, all_scores)
    torch.testing.assert_close(got_zsl, zsl_scores)
    assert not torch.allclose(got_zsl, got[:, 3:], atol=1e-3)
    model.set_zsl_vocabulary(None)
    assert 'zsl_score' not in model.predict(x)[0]
    with pytest.raises(ValueError, match="single label \\('dog'\\)"):
        model.set_zsl_vocabulary(['dog'])
    with pytest.raises(ValueError, match='vocabulary of a single label'):
        model.set_vocabulary(['dog'])


def test_distillation_skips_images_without_a_positive(ckpt):
    """The official loop drops images without a positive from the batch
    before both losses."""
    path, clip = ckpt
    torch.manual_seed(4)
    model = _mkt(path)
    names = ['red circle', 'blue square', 'green cross', 'cat']
    model.set_vocabulary(names)
    with torch.no_grad():
        model.head.init_proj(torch.randn_like(model.backbone.proj))
    x = torch.randn(4, 3, 32, 32)
    labels = [[0], [], [1, 2], []]
    losses = model.loss(x, _samples(labels, 4))
    e_cls = model.head.embed(model.extract_feat(x))[0]
    with torch.no_grad():
        teacher = clip.encode_image(x)
    keep = [0, 2]
    torch.testing.assert_close(losses['loss_distill'],
                               F.l1_loss(e_cls[keep], teacher[keep]))
    every = _mkt(path, distill_images='all')
    every.load_state_dict(model.state_dict())
    every.set_vocabulary(names)
    torch.testing.assert_close(
        every.loss(x, _samples(labels, 4))['loss_distill'],
        F.l1_loss(e_cls, teacher))
    # no positive at all: 0, and backward still runs
    none = model.loss(x, _samples([[]] * 4, 4))
    assert none['loss_distill'].item() == 0
    (none['loss_distill'] + none['loss_cls']).backward()
    with pytest.raises(ValueError, match='distill_images'):
        _mkt(path, distill_images='some')


def test_real_config_puts_no_weight_decay_on_1d_parameters(ckpt):
    """The official ``param_groups_lrd``: weight decay on every trainable
    parameter with more than one dimension, none on 1-D ones (attention
    ``in_proj_bias`` included)."""
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper
    path, _ = ckpt
    cfg = Config.fromfile('configs/mkt/mkt_vit_b16_20e_nuswide.py')
    model = _mkt(path)
    optim = build_optim_wrapper(model, cfg.optim_wrapper)
    decay = {}
    for group in optim.optimizer.param_groups:
        for p in group['params']:
            decay[id(p)] = group['weight_decay']
    checked = 0
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        expected = 0.0 if p.ndim == 1 else cfg.optim_wrapper.optimizer[
            'weight_decay']
        assert decay[id(p)] == expected, name
        checked += 'in_proj_bias' in name
    assert checked > 0


def test_names_clip_cannot_tell_apart_are_named(ckpt, monkeypatch):
    from types import SimpleNamespace

    import mmovl.models.classifiers.utils as utils
    path, _ = ckpt
    model = _mkt(path)
    warned = []
    logger = SimpleNamespace(warning=warned.append)
    monkeypatch.setattr(utils, 'MMLogger',
                        SimpleNamespace(get_current_instance=lambda: logger))
    model.set_vocabulary(['Red  Circle', 'red circle', 'dog', 'DOG', 'x'])
    assert len(warned) == 1
    assert "[['Red  Circle', 'red circle'], ['dog', 'DOG']]" in warned[0]
    with torch.no_grad():  # equal embeddings, as warned
        embeds = model.label_embeds()
    torch.testing.assert_close(embeds[0], embeds[1])
    model.set_vocabulary(['red circle', 'dog', 'x'])
    assert len(warned) == 1
