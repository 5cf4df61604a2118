# Copyright (c) mmovl contributors. All rights reserved.
import math
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn
import torch.nn.functional as F
from mmpretrain.registry import MODELS
from torch.nn.parallel import DistributedDataParallel

import mmovl  # noqa: F401
import mmovl.models.losses  # noqa: F401
from mmovl.models.losses import UniCLLoss, gather_features

# Repeated labels, one of them (3) in both halves of the batch, so that
# the distributed test has positives across ranks.
LABELS = [3, 0, 3, 5, 1, 3, 0, 7]


def make_batch(labels=LABELS, dim=5, seed=0, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    image = F.normalize(torch.randn(len(labels), dim, generator=gen), dim=-1)
    text = F.normalize(torch.randn(len(labels), dim, generator=gen), dim=-1)
    return (image.to(dtype), text.to(dtype),
            torch.tensor(labels, dtype=torch.long))


def brute_force(image, text, labels, scale):
    """UniCL's formula element by element, each direction averaged over the
    batch; works on tensors so that autograd can differentiate it."""
    labels = [int(y) for y in labels]
    size = len(labels)

    def direction(queries, keys):
        total = 0
        for i in range(size):
            denom = sum(
                torch.exp(scale * torch.dot(queries[i], keys[j]))
                for j in range(size))
            positives = [k for k in range(size) if labels[k] == labels[i]]
            total = total + sum(
                torch.log(
                    torch.exp(scale * torch.dot(queries[i], keys[k])) / denom)
                for k in positives) / len(positives)
        return -total / size

    return direction(image, text) + direction(text, image)


def test_matches_brute_force():
    image, text, labels = make_batch()
    for scale in (1.0, 14.3):
        expected = brute_force(image, text, labels, scale)
        loss = UniCLLoss()(image, text, labels, torch.tensor(scale))
        assert loss.shape == torch.Size([])
        torch.testing.assert_close(loss, expected)
    loss = UniCLLoss(loss_weight=0.25)(image, text, labels, 14.3)
    torch.testing.assert_close(loss,
                               0.25 * brute_force(image, text, labels, 14.3))
    # Not normalised here unless asked to.
    raw_image, raw_text = 3 * image, 0.5 * text
    torch.testing.assert_close(
        UniCLLoss(normalize=True)(raw_image, raw_text, labels, 14.3),
        brute_force(image, text, labels, 14.3))
    assert not torch.allclose(UniCLLoss()(raw_image, raw_text, labels, 14.3),
                              brute_force(image, text, labels, 14.3))


def test_distinct_labels_is_clip_loss():
    image, text, _ = make_batch()
    labels = torch.randperm(len(image), generator=torch.Generator()) * 7
    scale = torch.tensor(math.exp(2.3), dtype=image.dtype)
    target = torch.arange(len(image))
    expected = (
        F.cross_entropy(scale * image @ text.t(), target) +
        F.cross_entropy(scale * text @ image.t(), target))
    torch.testing.assert_close(UniCLLoss()(image, text, labels, scale),
                               expected)
    # open_clip averages the two directions instead of summing them.
    open_clip = pytest.importorskip('open_clip')
    clip_loss = open_clip.loss.ClipLoss()(image, text, scale)
    torch.testing.assert_close(
        UniCLLoss(loss_weight=0.5)(image, text, labels, scale), clip_loss)


def test_gradients_match_brute_force():
    image, text, labels = make_batch(seed=1)

    def grads(loss_fn):
        leaves = (image.clone().requires_grad_(),
                  text.clone().requires_grad_(),
                  torch.tensor(9.0, dtype=image.dtype, requires_grad=True))
        loss_fn(leaves[0], leaves[1], labels, leaves[2]).backward()
        return [leaf.grad for leaf in leaves]

    for actual, expected in zip(grads(UniCLLoss()), grads(brute_force)):
        torch.testing.assert_close(actual, expected)
    assert torch.autograd.gradcheck(
        lambda u, v, s: UniCLLoss()(u, v, labels[:4], s),
        (image[:4].clone().requires_grad_(), text[:4].clone().requires_grad_(),
         torch.tensor(5.0, dtype=image.dtype, requires_grad=True)))


def test_invalid_inputs():
    image, text, labels = make_batch(dtype=torch.float32)
    loss = UniCLLoss()
    with pytest.raises(ValueError, match=r'image_embeds must be a 2-D .*\(8,'):
        loss(image[:, 0], text, labels, 1.0)
    with pytest.raises(ValueError, match='text_embeds must be a 2-D'):
        loss(image, text[None], labels, 1.0)
    with pytest.raises(ValueError, match='text_embeds must be a 2-D'):
        loss(image, text.tolist(), labels, 1.0)
    with pytest.raises(ValueError, match='same shape'):
        loss(image, text[:6], labels, 1.0)
    with pytest.raises(ValueError, match='same shape'):
        loss(image, text[:, :4], labels, 1.0)
    with pytest.raises(ValueError, match=r'labels must have shape \(8, \)'):
        loss(image, text, labels[:7], 1.0)
    with pytest.raises(ValueError, match=r'labels must have shape'):
        loss(image, text, labels[:, None], 1.0)
    with pytest.raises(ValueError, match='labels must be integers'):
        loss(image, text, labels.float(), 1.0)
    with pytest.raises(ValueError, match='logit_scale must be a scalar'):
        loss(image, text, labels, torch.ones(2))
    with pytest.raises(ValueError, match='empty'):
        loss(image[:0], text[:0], labels[:0], 1.0)


def test_build_from_registry():
    loss = MODELS.build(dict(type='UniCLLoss', loss_weight=2.0))
    assert isinstance(loss, UniCLLoss)
    assert loss.loss_weight == 2.0 and loss.gather and not loss.normalize


class TinyDualEncoder(nn.Module):
    """Stands for a UniCL model: two projections and a learnable scale."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.image_proj = nn.Linear(6, 4).double()
        self.text_proj = nn.Linear(3, 4).double()
        self.log_scale = nn.Parameter(torch.tensor(2.0, dtype=torch.float64))
        self.loss = UniCLLoss()

    def forward(self, images, texts, labels):
        image = F.normalize(self.image_proj(images), dim=-1)
        text = F.normalize(self.text_proj(texts), dim=-1)
        return self.loss(image, text, labels, self.log_scale.exp())


def make_inputs():
    gen = torch.Generator().manual_seed(4)
    images = torch.randn(len(LABELS), 6, generator=gen, dtype=torch.float64)
    texts = torch.randn(len(LABELS), 3, generator=gen, dtype=torch.float64)
    return images, texts, torch.tensor(LABELS)


def _free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def _dist_worker(rank, world_size, port, out_dir):
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    dist.init_process_group('gloo', rank=rank, world_size=world_size)
    try:
        images, texts, labels = make_inputs()
        share = len(labels) // world_size
        rows = slice(rank * share, (rank + 1) * share)
        model = DistributedDataParallel(TinyDualEncoder())
        loss = model(images[rows], texts[rows], labels[rows])
        loss.backward()
        grads = {
            name: param.grad
            for name, param in model.module.named_parameters()
        }

        # Unequal shares (3 and 5 rows) gather in rank order, and each
        # rank's rows get the gradient summed over all ranks.
        rows = slice(0, 3) if rank == 0 else slice(3, None)
        image = images[rows, :4].clone().requires_grad_()
        text = texts[rows, :3].clone().requires_grad_()
        all_image, all_text, all_labels, start = gather_features(
            image, text, labels[rows])
        weights = torch.arange(
            len(labels) * 7, dtype=torch.float64).view(len(labels), 7)
        ((all_image * weights[:, :4]).sum() +
         (all_text * weights[:, 4:]).sum()).backward()
        gathered = dict(
            image=all_image.detach(),
            text=all_text.detach(),
            labels=all_labels,
            start=start,
            image_grad=image.grad,
            text_grad=text.grad)
        torch.save(
            dict(loss=loss.detach(), grads=grads, gathered=gathered),
            os.path.join(out_dir, f'rank{rank}.pt'))
    finally:
        dist.destroy_process_group()


def test_distributed_equals_single_process(tmp_path):
    world_size = 2
    # Spawned, not forked: a fork after an earlier test in this process ran
    # autograd on worker threads fails in backward ("Unable to handle
    # autograd's threading in combination with fork-based multiprocessing").
    mp.start_processes(
        _dist_worker,
        args=(world_size, _free_port(), str(tmp_path)),
        nprocs=world_size,
        start_method='spawn')
    results = [torch.load(tmp_path / f'rank{r}.pt') for r in range(2)]

    images, texts, labels = make_inputs()
    model = TinyDualEncoder()
    loss = model(images, texts, labels)
    loss.backward()
    # The loss as logged (mean over ranks) and the DDP-averaged gradients
    # are those of the global batch.
    torch.testing.assert_close(
        sum(r['loss'] for r in results) / world_size, loss.detach())
    for name, param in model.named_parameters():
        for result in results:
            torch.testing.assert_close(result['grads'][name], param.grad)
    # Half a batch on its own gives another loss: the gather matters.
    half = TinyDualEncoder()(images[:4], texts[:4], labels[:4])
    assert not torch.allclose(half, results[0]['loss'])

    weights = torch.arange(
        len(labels) * 7, dtype=torch.float64).view(len(labels), 7)
    for rank, rows in enumerate((slice(0, 3), slice(3, None))):
        gathered = results[rank]['gathered']
        torch.testing.assert_close(gathered['image'], images[:, :4])
        torch.testing.assert_close(gathered['text'], texts[:, :3])
        assert gathered['labels'].tolist() == LABELS
        assert gathered['start'] == rows.start
        torch.testing.assert_close(gathered['image_grad'],
                                   world_size * weights[rows, :4])
        torch.testing.assert_close(gathered['text_grad'],
                                   world_size * weights[rows, 4:7])
