# Copyright (c) mmovl contributors. All rights reserved.
"""ViLD: box head, RoI head, image loss, detector, vocabulary hook."""
import contextlib
import math
import os.path as osp
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from mmdet.registry import MODELS
from mmdet.testing import demo_mm_inputs
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData

from mmovl.engine import DetVocabularyHook
from mmovl.models import ViLDBBoxHead, ViLDImageLoss, map_boxes_to_input
from mmovl.models.losses.vild_image_loss import vild_image_loss

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOY_MODEL = osp.join(REPO, 'mmovl', 'configs', '_base_', 'models',
                     'vild_toy_r18_fpn.py')
D = 8  # embedding dimension of the stand-alone heads


def _head(**kwargs):
    cfg = dict(
        in_channels=4, roi_feat_size=7, fc_out_channels=16, embed_dim=D,
        num_classes=3)
    cfg.update(kwargs)
    torch.manual_seed(0)
    head = ViLDBBoxHead(**cfg)
    head.init_weights()
    return head


def _unit(*shape):
    return F.normalize(torch.randn(*shape), dim=-1)


# -- box head ---------------------------------------------------------------
@pytest.mark.parametrize('image_branch', [None, 'shared', 'projection',
                                          'tower'])
def test_head_output_shapes(image_branch):
    head = _head(image_branch=image_branch, num_shared_convs=1)
    head.set_class_embeddings(_unit(5, D))
    x = torch.randn(6, 4, 7, 7)
    head.train()
    cls_score, bbox_pred = head(x)
    assert cls_score.shape == (6, 5 + 1)  # 5 classes + background
    assert bbox_pred.shape == (6, 4)  # class-agnostic
    head.eval()
    modes = ['text'] if image_branch is None else ['text', 'image',
                                                   'ensemble']
    for mode in modes:
        head.score_mode = mode
        scores, bbox_pred = head(x)
        assert scores.shape == (6, 6) and bbox_pred.shape == (6, 4)
        assert ((scores >= 0) & (scores <= 1)).all()
    if image_branch is None:
        with pytest.raises(ValueError, match='image branch'):
            head.score_mode = 'ensemble'
    # an empty batch of RoIs
    assert head(torch.zeros(0, 4, 7, 7))[0].shape == (0, 6)


def test_head_rejects_class_specific_regression_and_needs_vocabulary():
    with pytest.raises(ValueError, match='reg_class_agnostic'):
        _head(reg_class_agnostic=False)
    with pytest.raises(ValueError, match='image_branch'):
        _head(image_branch='both')
    head = _head()
    with pytest.raises(RuntimeError, match='set_vocabulary'):
        head(torch.randn(2, 4, 7, 7))
    with pytest.raises(ValueError, match=r'\(C, 8\)'):
        head.set_class_embeddings(torch.randn(3, D + 1))


def _brute_force_text_ce(r, z, e_bg, labels, temperature):
    """The paper's ViLD-text loss, background column first: logits
    [<r, e_bg>, <r, z_1>, ...] / T; label 0 is background, class c is
    c + 1 (the head's labels: c for a class, C for background)."""
    num_classes = len(z)
    total = 0.0
    for i in range(len(r)):
        weights = [e_bg] + [z[c] for c in range(num_classes)]
        logits = [
            sum(float(r[i, k]) * float(w[k]) for k in range(len(w))) /
            temperature for w in weights
        ]
        target = 0 if labels[i] == num_classes else int(labels[i]) + 1
        log_sum = math.log(sum(math.exp(v - max(logits)) for v in logits))
        total += -(logits[target] - max(logits) - log_sum)
    return total / len(r)


def test_text_loss_matches_brute_force_softmax():
    head = _head(image_branch=None)
    z = _unit(3, D)
    head.set_class_embeddings(z)
    head.train()
    x = torch.randn(5, 4, 7, 7)
    cls_score, bbox_pred = head(x)
    # mmdet's background convention: label C (= 3) is background
    labels = torch.tensor([0, 2, 3, 1, 3])
    n = len(labels)
    losses = head.loss(cls_score, bbox_pred, None, labels, torch.ones(n),
                       torch.zeros(n, 4), torch.zeros(n, 4))
    r = head.forward_embeds(x)[0].detach()
    assert torch.allclose(r.norm(dim=1), torch.ones(n), atol=1e-6)
    e_bg = F.normalize(head.bg_embed.detach(), dim=0)
    expected = _brute_force_text_ce(r, z, e_bg, labels, 0.01)
    assert losses['loss_cls'].item() == pytest.approx(expected, rel=1e-4)
    # the background is the last column of the logits
    assert torch.allclose(cls_score[:, -1], r @ e_bg / 0.01, atol=1e-3)


def test_background_embedding_is_learned():
    head = _head(image_branch=None)
    head.set_class_embeddings(_unit(3, D))
    head.train()
    cls_score, bbox_pred = head(torch.randn(4, 4, 7, 7))
    labels = torch.tensor([3, 3, 0, 1])  # two background RoIs
    losses = head.loss(cls_score, bbox_pred, None, labels, torch.ones(4),
                       torch.zeros(4, 4), torch.zeros(4, 4))
    losses['loss_cls'].backward()
    assert head.bg_embed.requires_grad
    assert head.bg_embed.grad is not None
    assert head.bg_embed.grad.abs().sum() > 0
    # the vocabulary's text embeddings are fixed (a buffer, no parameter)
    assert head.class_embeds.grad is None
    assert 'class_embeds' not in dict(head.named_parameters())
    assert 'class_embeds' not in head.state_dict()


def test_loss_refuses_eval_mode():
    head = _head()
    head.set_class_embeddings(_unit(3, D))
    head.eval()
    cls_score, bbox_pred = head(torch.randn(2, 4, 7, 7))
    with pytest.raises(RuntimeError, match='train mode'):
        head.loss(cls_score, bbox_pred, None, torch.tensor([0, 3]),
                  torch.ones(2), torch.zeros(2, 4), torch.zeros(2, 4))


def test_ensemble_rule_matches_formula():
    head = _head(image_branch='projection', ensemble_lambda=2 / 3)
    z = _unit(4, D)
    novel = torch.tensor([False, True, False, True])
    head.set_class_embeddings(z, novel)
    text, image = _unit(3, D), _unit(3, D)
    e_bg = F.normalize(head.bg_embed.detach(), dim=0)
    got = {m: head.predict_scores(text, image, m).detach()
           for m in ('text', 'image', 'ensemble')}
    lam = 2 / 3
    for i in range(3):
        # text: softmax over [bg, classes]; image: over the classes only
        t_logits = [float(text[i] @ e_bg) / 0.01] + [
            float(text[i] @ z[c]) / 0.01 for c in range(4)
        ]
        t_den = sum(math.exp(v) for v in t_logits)
        p_text = [math.exp(v) / t_den for v in t_logits]
        i_logits = [float(image[i] @ z[c]) / 0.01 for c in range(4)]
        i_den = sum(math.exp(v) for v in i_logits)
        p_image = [math.exp(v) / i_den for v in i_logits]
        for c in range(4):
            pt, pi = p_text[c + 1], p_image[c]
            if novel[c]:
                expected = pt**(1 - lam) * pi**lam
            else:
                expected = pt**lam * pi**(1 - lam)
            assert got['ensemble'][i, c].item() == pytest.approx(
                expected, rel=1e-4, abs=1e-12)
            assert got['text'][i, c].item() == pytest.approx(
                pt, rel=1e-4, abs=1e-12)
            assert got['image'][i, c].item() == pytest.approx(
                pi, rel=1e-4, abs=1e-12)
        assert got['text'][i, -1].item() == pytest.approx(
            p_text[0], rel=1e-4, abs=1e-12)
        assert got['ensemble'][i, -1].item() == pytest.approx(
            p_text[0], rel=1e-4, abs=1e-12)
        assert got['image'][i, -1].item() == 0


# -- image loss -------------------------------------------------------------
def test_image_loss_matches_brute_force_l1():
    torch.manual_seed(1)
    r, v = _unit(5, D), _unit(5, D)
    expected = sum(
        sum(abs(float(v[i, k]) - float(r[i, k])) for k in range(D))
        for i in range(5)) / 5
    assert vild_image_loss(r, v).item() == pytest.approx(expected, rel=1e-5)
    loss = ViLDImageLoss(loss_weight=0.5)
    assert loss(r, v).item() == pytest.approx(0.5 * expected, rel=1e-5)
    # no proposals: zero, and backward still works
    empty = torch.zeros(0, D, requires_grad=True)
    out = loss(empty, torch.zeros(0, D))
    out.backward()
    assert out.item() == 0
    with pytest.raises(ValueError, match=r'\(M, D\)'):
        loss(r, v[:4])


# -- box mapping ------------------------------------------------------------
def test_map_boxes_to_input_resize_and_flips():
    boxes = torch.tensor([[10., 20., 30., 60.], [0., 0., 5., 5.]])
    # resize (w x2, h x0.5): the input is 200 wide and 50 high
    meta = dict(scale_factor=(2.0, 0.5), img_shape=(50, 200))
    resized = torch.tensor([[20., 10., 60., 30.], [0., 0., 10., 2.5]])
    assert torch.equal(map_boxes_to_input(boxes, meta), resized)
    assert torch.equal(
        map_boxes_to_input(boxes, dict(meta, flip=True,
                                       flip_direction='horizontal')),
        torch.tensor([[140., 10., 180., 30.], [190., 0., 200., 2.5]]))
    assert torch.equal(
        map_boxes_to_input(boxes, dict(meta, flip=True,
                                       flip_direction='vertical')),
        torch.tensor([[20., 20., 60., 40.], [0., 47.5, 10., 50.]]))
    assert torch.equal(
        map_boxes_to_input(boxes, dict(meta, flip=True,
                                       flip_direction='diagonal')),
        torch.tensor([[140., 20., 180., 40.], [190., 47.5, 200., 50.]]))
    # no Resize / RandomFlip in the pipeline: unchanged
    assert torch.equal(map_boxes_to_input(boxes, dict(img_shape=(9, 9))),
                       boxes)
    with pytest.raises(ValueError, match='flip_direction'):
        map_boxes_to_input(boxes, dict(meta, flip=True, flip_direction=None))
    with pytest.raises(ValueError, match=r'\(M, 4\)'):
        map_boxes_to_input(torch.zeros(3, 5), meta)


# -- detector ---------------------------------------------------------------
def _toy_model(ckpt, **roi_head):
    cfg = Config.fromfile(TOY_MODEL)
    cfg.model.teacher.checkpoint = ckpt
    cfg.model.roi_head.update(roi_head)
    init_default_scope('mmdet')
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model


def _batch(model, training, with_proposals=True, num_classes=4):
    data = demo_mm_inputs(2, [(3, 64, 48), (3, 48, 64)],
                          num_classes=num_classes, with_mask=True)
    if with_proposals:
        for i, sample in enumerate(data['data_samples']):
            sample.set_metainfo(dict(scale_factor=(1.0, 1.0), flip=False))
            sample.clip_proposals = InstanceData(
                bboxes=torch.tensor([[4., 6., 30., 40.],
                                     [10., 10., 40., 44.]])[:2 - i],
                embeds=_unit(2 - i, 64))
    return model.data_preprocessor(data, training)


NAMES = ['red circle', 'blue square', 'green cross', 'purple diamond']


def test_toy_model_loss_and_predict(random_toy_teacher):
    model = _toy_model(random_toy_teacher)
    model.set_vocabulary(NAMES)
    model.train()
    data = _batch(model, True)
    losses = model.loss(data['inputs'], data['data_samples'])
    for key in ('loss_rpn_cls', 'loss_rpn_bbox', 'loss_cls', 'loss_bbox',
                'loss_image'):
        assert key in losses
    total, _ = model.parse_losses(losses)
    assert torch.isfinite(total)
    total.backward()
    head = model.roi_head.bbox_head
    assert head.image_proj.weight.grad.abs().sum() > 0  # image branch
    assert head.text_proj.weight.grad.abs().sum() > 0  # text branch
    assert all(p.grad is None for p in model.teacher.clip.parameters())

    # a new vocabulary at test time, novel categories marked
    model.eval()
    vocab = NAMES + ['orange triangle', 'yellow circle']
    model.set_vocabulary(vocab, novel_names=vocab[4:])
    data = _batch(model, False, with_proposals=False)
    with torch.no_grad():
        results = model.predict(data['inputs'], data['data_samples'])
    for sample, res in zip(data['data_samples'], results):
        pred = res.pred_instances
        assert len(pred) > 0
        assert ((pred.labels >= 0) & (pred.labels < len(vocab))).all()
        assert ((pred.scores >= 0) & (pred.scores <= 1)).all()
        h, w = sample.ori_shape
        assert (pred.bboxes[:, 0::2] <= w + 1e-3).all()
        assert (pred.bboxes[:, 1::2] <= h + 1e-3).all()


def test_toy_model_with_class_agnostic_mask_head(random_toy_teacher):
    from mmcv.ops import RoIAlign
    mask = dict(
        mask_roi_extractor=dict(
            type='SingleRoIExtractor',
            roi_layer=dict(type=RoIAlign, output_size=14, sampling_ratio=0),
            out_channels=64, featmap_strides=[4, 8, 16, 32]),
        mask_head=dict(type='FCNMaskHead', num_convs=1, in_channels=64,
                       conv_out_channels=16, num_classes=24,
                       class_agnostic=True))
    with pytest.raises(ValueError, match='class-agnostic mask head'):
        _toy_model(random_toy_teacher,
                   **dict(mask, mask_head=dict(mask['mask_head'],
                                               class_agnostic=False)))
    model = _toy_model(random_toy_teacher, **mask)
    model.train()
    model.roi_head.train_cfg.mask_size = 28
    model.set_vocabulary(NAMES)
    data = _batch(model, True)
    losses = model.loss(data['inputs'], data['data_samples'])
    assert torch.isfinite(losses['loss_mask'])
    model.eval()
    model.roi_head.test_cfg.mask_thr_binary = 0.5
    model.set_vocabulary(NAMES[:3])
    with torch.no_grad():
        res = model.predict(data['inputs'], data['data_samples'])
    assert res[0].pred_instances.masks.shape[0] == len(
        res[0].pred_instances)


@contextlib.contextmanager
def patch_print_log():
    from mmovl.models.roi_heads import vild_roi_head
    logged = []
    real = vild_roi_head.print_log

    def spy(msg, *args, **kwargs):
        logged.append(msg)
        return real(msg, *args, **kwargs)

    vild_roi_head.print_log = spy
    try:
        yield logged
    finally:
        vild_roi_head.print_log = real


def test_image_loss_without_proposals(random_toy_teacher):
    model = _toy_model(random_toy_teacher)
    model.set_vocabulary(NAMES)
    model.train()
    # no sample carries the field: a 0 that still reaches the image branch
    # (DDP without find_unused_parameters needs a gradient for every
    # parameter), and a warning
    data = _batch(model, True, with_proposals=False)
    with patch_print_log() as logged:
        losses = model.loss(data['inputs'], data['data_samples'])
        model.loss(data['inputs'], data['data_samples'])
    assert [m for m in logged if 'no sample' in m] and len(
        [m for m in logged if 'no sample' in m]) == 1  # once
    assert losses['loss_image'].item() == 0
    model.zero_grad(set_to_none=True)
    model.parse_losses(losses)[0].backward()
    branch = model.roi_head.bbox_head.image_proj
    assert all(p.grad is not None for p in branch.parameters())
    assert all(p.grad is not None for p in model.parameters()
               if p.requires_grad)
    # the field with M = 0 on one image, absent on the other: zero
    data['data_samples'][0].clip_proposals = InstanceData(
        bboxes=torch.zeros(0, 4), embeds=torch.zeros(0, 64))
    losses = model.loss(data['inputs'], data['data_samples'])
    assert losses['loss_image'].item() == 0
    model.parse_losses(losses)[0].backward()


@pytest.mark.parametrize('frame', [None, 'original', 'input'])
def test_roi_head_image_loss_boxes(random_toy_teacher, frame):
    """Proposals in original pixels (no frame, or 'original') are mapped
    with the sample's metainfo; those PackViLDInputs already mapped
    ('input') are used as they are."""
    model = _toy_model(random_toy_teacher)
    model.set_vocabulary(NAMES)
    model.train()
    data = _batch(model, True)
    samples = data['data_samples']
    boxes = torch.tensor([[4., 6., 20., 30.]])
    embeds = _unit(1, 64)
    meta = {} if frame is None else dict(frame=frame)
    for s in samples:
        s.clip_proposals = InstanceData(
            metainfo=meta, bboxes=boxes, embeds=embeds)
    samples[1].set_metainfo(
        dict(scale_factor=(2.0, 0.5), flip=True,
             flip_direction='horizontal'))
    x = model.extract_feat(data['inputs'])
    roi_head = model.roi_head
    got = roi_head.image_distill_loss(x, samples)['loss_image']
    # independently: the boxes in the input frame, by hand
    h1, w1 = samples[1].img_shape
    second = boxes if frame == 'input' else torch.tensor(
        [[w1 - 40., 3., w1 - 8., 15.]])
    rois = torch.cat([torch.cat([torch.full((1, 1), float(i)), b], 1)
                      for i, b in enumerate([boxes, second])])
    feats = roi_head.bbox_roi_extractor(x[:4], rois)
    region = roi_head.bbox_head.image_embeds(feats)
    expected = 0.5 * (region - embeds).abs().sum(dim=1).mean()
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)


def test_vocabulary_switch_reorders_and_resizes_scores(random_toy_teacher):
    model = _toy_model(random_toy_teacher)
    model.eval()
    head = model.roi_head.bbox_head
    feats = torch.randn(7, 64, 7, 7)
    state = {k: v.clone() for k, v in model.state_dict().items()}

    model.set_vocabulary(NAMES, novel_names=['green cross'])
    assert head.num_classes == 4
    assert head.novel_mask.tolist() == [False, False, True, False]
    with torch.no_grad():
        scores4 = head(feats)[0]
    assert scores4.shape == (7, 5)

    reordered = [NAMES[2], 'yellow circle', NAMES[0]]
    model.set_vocabulary(reordered)
    assert head.num_classes == 3 and head.novel_mask.sum() == 0
    teacher_embeds = model.teacher.encode_labels(reordered)
    assert torch.allclose(head.class_embeds, teacher_embeds, atol=1e-6)
    head.score_mode = 'text'
    with torch.no_grad():
        text3 = head(feats)[0]
        model.set_vocabulary(NAMES)
        text4 = head(feats)[0]
    assert text3.shape == (7, 4)
    # the same categories get the same logits whatever the vocabulary:
    # column order follows the names (softmax denominators differ)
    log3, log4 = text3.log(), text4.log()
    same = [(0, 2), (2, 0)]  # (column in reordered, column in NAMES)
    for a, b in same:
        assert torch.allclose(log3[:, a] - log3[:, -1],
                              log4[:, b] - log4[:, -1], atol=1e-3)
    # no retraining: every weight is untouched
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k

    with pytest.raises(ValueError, match='not in the vocabulary'):
        model.set_vocabulary(NAMES, novel_names=['zebra'])
    with pytest.raises(ValueError, match='Duplicate'):
        model.set_vocabulary(NAMES + NAMES[:1])


def test_vild_checks_embed_dim(random_toy_teacher):
    cfg = Config.fromfile(TOY_MODEL)
    cfg.model.teacher.checkpoint = random_toy_teacher
    cfg.model.roi_head.bbox_head.embed_dim = 32  # the teacher's is 64
    init_default_scope('mmdet')
    with pytest.raises(ValueError, match='embed_dim=32'):
        MODELS.build(cfg.model)


# -- vocabulary hook ----------------------------------------------------------
def test_det_vocabulary_hook_passes_novel_classes():
    calls = []
    model = SimpleNamespace(
        set_vocabulary=lambda names, novel=None: calls.append((names, novel)))

    def loader(**metainfo):
        return SimpleNamespace(dataset=SimpleNamespace(metainfo=metainfo))

    base, novel = ('cat', 'dog'), ('zebra', )
    runner = SimpleNamespace(
        model=model,
        train_dataloader=loader(classes=base, base_classes=base,
                                novel_classes=novel),
        val_dataloader=loader(classes=base + novel, novel_classes=novel),
        test_dataloader=loader(classes=base + novel))
    hook = DetVocabularyHook()
    hook.before_train_epoch(runner)
    hook.before_val_epoch(runner)
    hook.before_test_epoch(runner)
    assert calls == [(base, None), (base + novel, ['zebra']),
                     (base + novel, None)]
    from mmdet.registry import HOOKS
    assert HOOKS.get('DetVocabularyHook') is DetVocabularyHook
    # one name per task: classification's hook is not in mmdet's scope
    assert HOOKS.get('VocabularyHook') is None
    with pytest.raises(ValueError, match='no classes'):
        hook._set(runner, loader(novel_classes=novel))
