# Copyright (c) mmovl contributors. All rights reserved.
import math

import pytest
import torch
import torch.nn.functional as F
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

import mmovl  # noqa: F401
import mmovl.models.heads  # noqa: F401
from mmovl.models.heads import TwoStreamHead
from mmovl.models.losses import RankLoss

WIDTH, DIM, PATCHES = 6, 4, 5


def make_inputs(batch=3, classes=7, seed=0):
    gen = torch.Generator().manual_seed(seed)
    cls_token = torch.randn(batch, WIDTH, generator=gen, dtype=torch.float64)
    patches = torch.randn(
        batch, PATCHES, WIDTH, generator=gen, dtype=torch.float64)
    labels = F.normalize(
        torch.randn(classes, DIM, generator=gen, dtype=torch.float64), dim=-1)
    return (cls_token, patches), labels


def make_head(seed=0, **kwargs):
    kwargs.setdefault('in_channels', WIDTH)
    kwargs.setdefault('out_channels', DIM)
    kwargs.setdefault('topk', 2)
    torch.manual_seed(seed)
    return TwoStreamHead(**kwargs).double()


def unit(vector):
    norm = math.sqrt(sum(v * v for v in vector))
    return [v / norm for v in vector]


def dot(a, b):
    return sum(x * y for x, y in zip(a, b))


def brute_force(feats,
                labels,
                global_proj,
                local_proj,
                topk,
                streams='both',
                combine='normalized_mean',
                normalize=True):
    """MKT's scores image by image and label by label in plain Python;
    the projections are (W, D) matrices used as ``x @ proj``."""
    cls_token, patches = feats

    def project(x, proj):
        e = (x @ proj).tolist()
        return unit(e) if normalize else e

    labels = labels.tolist()
    scores = []
    for b in range(cls_token.shape[0]):
        e_cls = project(cls_token[b], global_proj)
        e_patch = [project(p, local_proj) for p in patches[b]]
        g = [dot(e_cls, z) for z in labels]
        k = min(topk, len(e_patch))
        local = [
            sum(sorted((dot(e, z) for e in e_patch), reverse=True)[:k]) / k
            for z in labels
        ]
        used = {'both': [g, local], 'global': [g], 'local': [local]}[streams]
        if combine == 'normalized_mean':
            used = [unit(s) for s in used]
        scores.append([sum(v) / len(used) for v in zip(*used)])
    return torch.tensor(scores, dtype=torch.float64)


def projections(head):
    if head.share_projection:
        return head.proj.weight.t(), head.proj.weight.t()
    local = getattr(head, 'local_proj', head.global_proj)
    return head.global_proj.weight.t(), local.weight.t()


@pytest.mark.parametrize('streams', ['both', 'global', 'local'])
@pytest.mark.parametrize('share', [True, False])
def test_scores_match_brute_force(streams, share):
    feats, labels = make_inputs()
    head = make_head(streams=streams, share_projection=share)
    with torch.no_grad():
        scores = head(feats, labels)
    assert scores.shape == (3, 7)
    expected = brute_force(
        feats, labels, *projections(head), topk=2, streams=streams)
    torch.testing.assert_close(scores, expected)
    if streams == 'both' and not share:
        # The two streams really use different projections.
        same = brute_force(
            feats,
            labels,
            head.global_proj.weight.t(),
            head.global_proj.weight.t(),
            topk=2)
        assert not torch.allclose(scores, same)
    head.combine = 'mean'
    with torch.no_grad():
        scores = head(feats, labels)
    torch.testing.assert_close(
        scores,
        brute_force(
            feats, labels, *projections(head), 2, streams, combine='mean'))


def test_raw_embeddings_option():
    feats, labels = make_inputs(seed=1)
    head = make_head(normalize_embeds=False)
    with torch.no_grad():
        scores = head(feats, labels)
    torch.testing.assert_close(
        scores,
        brute_force(feats, labels, *projections(head), 2, normalize=False))
    # Normalising the tokens changes which patches the local stream keeps.
    assert not torch.allclose(
        scores, brute_force(feats, labels, *projections(head), 2))


def test_init_proj_and_embed():
    feats, _ = make_inputs()
    proj = torch.randn(WIDTH, DIM, dtype=torch.float64)  # open_clip layout
    for share in (True, False):
        head = make_head(share_projection=share)
        head.init_proj(proj)
        for weight in projections(head):
            torch.testing.assert_close(weight, proj)
        with torch.no_grad():
            e_cls, e_patch = head.embed(feats)
        torch.testing.assert_close(e_cls, F.normalize(feats[0] @ proj, dim=-1))
        torch.testing.assert_close(e_patch,
                                   F.normalize(feats[1] @ proj, dim=-1))
        torch.testing.assert_close(head.embed_cls(feats), e_cls)
    head = make_head(normalize_embeds=False)
    head.init_proj(proj)
    torch.testing.assert_close(head.embed(feats)[0], feats[0] @ proj)
    # Global stream only, separate projections: no local projection exists.
    head = make_head(streams='global', share_projection=False)
    assert not hasattr(head, 'local_proj')
    head.init_proj(proj)
    assert head.embed(feats)[1] is None
    with pytest.raises(ValueError, match=r'shape \(6, 4\)'):
        head.init_proj(proj.t())


def test_topk_larger_than_patches():
    feats, labels = make_inputs()
    head = make_head(topk=16, streams='local', combine='mean')
    with torch.no_grad():
        scores = head(feats, labels)
        e_patch = head.embed(feats)[1]
    # All N = 5 patches are averaged.
    torch.testing.assert_close(scores, (e_patch @ labels.t()).mean(dim=1))
    torch.testing.assert_close(
        scores,
        brute_force(feats, labels, *projections(head), 16, 'local', 'mean'))


def test_topk_threads_are_the_heads_own():
    """The local stream's top-k threads are a head option, owned by the
    head: none start before a call needs them, a copy of the model has its
    own, and the scores do not depend on the thread count."""
    import copy
    feats, labels = make_inputs(batch=4, classes=30)
    one = make_head(streams='local', topk_threads=1)
    assert one.topk_pool.num_threads == 1
    assert make_head().topk_pool.num_threads is None  # torch's thread count
    two = make_head(streams='local', topk_threads=2)
    two.topk_pool.min_numel = 0  # split even this small score map
    with torch.no_grad():
        expected = one(feats, labels)
        torch.testing.assert_close(two(feats, labels), expected)
        assert one.topk_pool._executor is None
        assert two.topk_pool._executor is not None
        twin = copy.deepcopy(two)
        assert twin.topk_pool is not two.topk_pool
        assert twin.topk_pool._executor is None
        torch.testing.assert_close(twin(feats, labels), expected)
    two.topk_pool.close()
    twin.topk_pool.close()
    with pytest.raises(ValueError, match='num_threads'):
        make_head(topk_threads=0)


def test_vocabulary_switch():
    feats, labels = make_inputs(classes=7)
    head = make_head()
    state = {k: v.clone() for k, v in head.state_dict().items()}
    with torch.no_grad():
        seven = head(feats, labels)
        three = head(feats, labels[[4, 0, 2]])
    assert seven.shape == (3, 7) and three.shape == (3, 3)
    torch.testing.assert_close(
        three, brute_force(feats, labels[[4, 0, 2]], *projections(head), 2))
    # The vocabulary is no weight of the head.
    assert all(torch.equal(v, state[k]) for k, v in head.state_dict().items())
    assert not any(p.shape[0] in (3, 7) for p in head.parameters())


def test_loss_matches_rank_loss():
    feats, labels = make_inputs(batch=4)
    head = make_head()
    samples = [
        DataSample().set_gt_label([0, 3]),
        DataSample().set_gt_label([6]),
        DataSample().set_gt_label([]),  # no positive: left out of the mean
        DataSample().set_gt_label([1, 2, 5]),
    ]
    target = torch.zeros(4, 7)
    for i, sample in enumerate(samples):
        target[i, sample.gt_label] = 1
    expected = RankLoss()(brute_force(feats, labels, *projections(head), 2),
                          target)
    losses = head.loss(feats, labels, samples)
    assert list(losses) == ['loss_cls']
    torch.testing.assert_close(losses['loss_cls'], expected)
    # The embedding the global stream scored comes along on request.
    losses, e_cls = head.loss(feats, labels, samples, return_embeds=True)
    torch.testing.assert_close(losses['loss_cls'], expected)
    torch.testing.assert_close(e_cls, head.embed_cls(feats))
    assert e_cls.requires_grad

    # gt_score (unknown labels as -1) takes precedence over gt_label.
    gt_score = torch.tensor([[1, 0, -1, -1, 0, 1, 0], [0, -1, 1, 0, 0, 0, 0],
                             [1, 1, 0, 0, -1, -1, 0], [-1, -1, -1, 0, 1, 0,
                                                       0]]).float()
    samples = [
        DataSample().set_gt_label([0]).set_gt_score(s) for s in gt_score
    ]
    scores = brute_force(feats, labels, *projections(head), 2)
    expected = RankLoss()(scores, gt_score)
    torch.testing.assert_close(
        head.loss(feats, labels, samples)['loss_cls'], expected)
    # -1 is ignored, not taken for a negative.
    assert not torch.allclose(expected, RankLoss()(scores, gt_score.clamp(0)))


def test_loss_uses_configured_loss():
    feats, labels = make_inputs()
    head = make_head(loss=dict(type='RankLoss', margin=0.3, loss_weight=2.0))
    samples = [DataSample().set_gt_label([i, i + 1]) for i in range(3)]
    target = torch.zeros(3, 7)
    for i in range(3):
        target[i, [i, i + 1]] = 1
    expected = RankLoss(
        margin=0.3, loss_weight=2.0)(brute_force(feats, labels,
                                                 *projections(head), 2),
                                     target)
    torch.testing.assert_close(
        head.loss(feats, labels, samples)['loss_cls'], expected)


def test_gradients_reach_projections():
    feats, labels = make_inputs()
    samples = [DataSample().set_gt_label([i, 6 - i]) for i in range(3)]
    for share in (True, False):
        head = make_head(share_projection=share)
        head.loss(feats, labels, samples)['loss_cls'].backward()
        params = dict(head.named_parameters())
        assert set(params) == ({'proj.weight'} if share else
                               {'global_proj.weight', 'local_proj.weight'})
        for name, param in params.items():
            assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_predict():
    feats, labels = make_inputs()
    head = make_head()
    with torch.no_grad():
        scores = head(feats, labels)
    results = head.predict(feats, labels)
    assert len(results) == 3 and all(
        isinstance(r, DataSample) for r in results)
    torch.testing.assert_close(
        torch.stack([r.pred_score for r in results]), scores)
    samples = [DataSample().set_gt_label([1]), None, DataSample()]
    results = head.predict(feats, labels, samples)
    assert results[0] is samples[0] and results[2] is samples[2]
    assert results[0].gt_label.tolist() == [1]
    torch.testing.assert_close(results[1].pred_score, scores[1])


def test_build_and_feature_formats():
    head = MODELS.build(
        dict(type='TwoStreamHead', in_channels=WIDTH, out_channels=DIM))
    assert isinstance(head, TwoStreamHead)
    assert head.topk == 16 and head.streams == 'both'
    assert head.combine == 'normalized_mean' and head.share_projection
    assert isinstance(head.loss_module, RankLoss)
    feats, labels = make_inputs()
    head = head.double()
    # MMPretrain's tuple of stages (the backbone's output) works as well.
    torch.testing.assert_close(head((feats, ), labels), head(feats, labels))


def test_invalid_inputs():
    (cls_token, patches), labels = make_inputs()
    head = make_head()
    with pytest.raises(ValueError, match='feats must be a tuple'):
        head(cls_token, labels)
    with pytest.raises(ValueError, match=r'cls_token must have shape'):
        head((cls_token[:, :4], patches), labels)
    with pytest.raises(ValueError, match=r'patch_tokens must have shape'):
        head((cls_token, patches[:2]), labels)
    with pytest.raises(ValueError, match=r'patch_tokens must have shape'):
        head((cls_token, patches[:, :0]), labels)
    with pytest.raises(ValueError, match=r'label_embeds must have shape'):
        head((cls_token, patches), labels[:, :3])
    with pytest.raises(ValueError, match=r'label_embeds must have shape'):
        head((cls_token, patches), labels[:0])
    samples = [DataSample().set_gt_label([7])] * 3
    with pytest.raises(ValueError, match='out of the vocabulary'):
        head.loss((cls_token, patches), labels, samples)
    samples = [DataSample().set_gt_score(torch.zeros(5))] * 3
    with pytest.raises(ValueError, match='gt_score has 5 entries'):
        head.loss((cls_token, patches), labels, samples)
    with pytest.raises(ValueError, match='2 data samples for 3 images'):
        head.loss((cls_token, patches), labels, samples[:2])
    for kwargs in (dict(streams='patch'), dict(combine='max'), dict(topk=0)):
        with pytest.raises(ValueError):
            make_head(**kwargs)
