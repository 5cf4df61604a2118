# Copyright (c) mmovl contributors. All rights reserved.
import pytest
import torch
import torch.nn.functional as F
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

import mmovl  # noqa: F401
from mmovl.models import UniCLLoss

TINY = dict(
    embed_dim=16,
    vision_cfg=dict(image_size=32, layers=1, width=32, head_width=16,
                    patch_size=16),
    text_cfg=dict(context_length=16, vocab_size=49408, width=16, heads=1,
                  layers=1))


def _model(**kwargs):
    torch.manual_seed(0)
    return MODELS.build(
        dict(type='UniCL', model_name='test-unicl-tiny', model_cfg=TINY,
             **kwargs))


def _samples(texts, labels):
    out = []
    for t, y in zip(texts, labels):
        s = DataSample().set_gt_label(y)
        s.set_field(t, 'text', field_type='metainfo')
        out.append(s)
    return out


def test_loss_matches_independent_computation():
    model = _model()
    images = torch.randn(4, 3, 32, 32)
    texts = ['a red circle', 'a photo of a red circle.', 'two blue squares',
             'a cat']
    labels = [0, 0, 5, 6]
    losses = model.loss(images, _samples(texts, labels))
    clip = model.clip
    u = F.normalize(clip.encode_image(images), dim=-1)
    v = F.normalize(clip.encode_text(model.tokenizer(texts)), dim=-1)
    expected = UniCLLoss()(u, v, torch.tensor(labels),
                           clip.logit_scale.exp())
    torch.testing.assert_close(losses['loss_contrastive'], expected)
    assert losses['logit_scale'].item() == pytest.approx(1 / 0.07, rel=1e-4)
    losses['loss_contrastive'].backward()
    assert clip.logit_scale.grad is not None


def test_predict_scores_are_prompt_cosines():
    model = _model(templates=('a photo of a {}.', 'a drawing of a {}.'))
    model.eval()
    names = ['red circle', 'blue square', 'green cross']
    model.set_vocabulary(names)
    images = torch.randn(3, 3, 32, 32)
    scores = torch.stack([s.pred_score for s in model.predict(images)])
    clip = model.clip
    with torch.no_grad():
        u = F.normalize(clip.encode_image(images), dim=-1)
        protos = []
        for name in names:
            per_t = [
                F.normalize(
                    clip.encode_text(model.tokenizer([t.format(name)])),
                    dim=-1)[0]
                for t in ('a photo of a {}.', 'a drawing of a {}.')
            ]
            protos.append(F.normalize(torch.stack(per_t).mean(0), dim=0))
        expected = u @ torch.stack(protos).t()
    torch.testing.assert_close(scores, expected, rtol=1e-5, atol=1e-5)


def test_prototypes_follow_the_weights():
    model = _model()
    model.set_vocabulary(['red circle', 'blue square'])
    images = torch.randn(2, 3, 32, 32)
    before = model.predict(images)[0].pred_score.clone()
    with torch.no_grad():
        model.clip.text_projection.mul_(-1)  # flips every text embedding
    model.train()
    model.eval()
    after = model.predict(images)[0].pred_score
    torch.testing.assert_close(after, -before, rtol=1e-5, atol=1e-6)


def test_vocabulary_errors():
    model = _model()
    with pytest.raises(RuntimeError, match='vocabulary'):
        model.predict(torch.randn(1, 3, 32, 32))
    with pytest.raises(ValueError, match='empty'):
        model.set_vocabulary([])
    with pytest.raises(ValueError, match='duplicate'):
        model.set_vocabulary(['a', 'a'])


def test_label_unaware_is_clips_loss():
    model = _model(label_aware=False)
    images = torch.randn(3, 3, 32, 32)
    texts = ['a red circle', 'a red circle', 'a cat']
    samples = _samples(texts, [0, 0, 1])
    for i, s in enumerate(samples):
        s.set_metainfo(dict(sample_idx=10 + i))
    loss = model.loss(images, samples)['loss_contrastive']
    clip = model.clip
    u = F.normalize(clip.encode_image(images), dim=-1)
    v = F.normalize(clip.encode_text(model.tokenizer(texts)), dim=-1)
    logits = clip.logit_scale.exp() * u @ v.t()
    target = torch.arange(3)
    expected = F.cross_entropy(logits, target) + F.cross_entropy(
        logits.t(), target)
    torch.testing.assert_close(loss, expected)
