# Copyright (c) mmovl contributors. All rights reserved.
import multiprocessing
import os
import time

import pytest
import torch

from mmovl.models.heads.utils import TopkThreads, topk_mean


def sorted_mean(x, k, dim):
    """Brute force: sort each slice in plain Python, average the k largest."""
    moved = x.movedim(dim, -1)
    flat = moved.reshape(-1, moved.shape[-1]).tolist()
    k = min(k, moved.shape[-1])
    out = [sum(sorted(row, reverse=True)[:k]) / k for row in flat]
    return torch.tensor(out, dtype=x.dtype).reshape(moved.shape[:-1])


@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
@pytest.mark.parametrize('dim', [0, 1, 2, -1])
@pytest.mark.parametrize('k', [1, 3, 7, 50])
def test_matches_brute_force_on_both_paths(dtype, dim, k):
    gen = torch.Generator().manual_seed(k + 10 * (dim + 1))
    x = torch.randn(4, 7, 9, generator=gen, dtype=dtype)
    # ties, which must count as many times as they occur
    x[0, :3, :3] = 0.5
    expected = sorted_mean(x, k, dim)
    with torch.no_grad():
        fast = topk_mean(x, k, dim)  # NumPy path
    grad = topk_mean(x.clone().requires_grad_(), k, dim)  # torch.topk path
    assert grad.requires_grad and not fast.requires_grad
    assert fast.dtype == dtype and fast.shape == expected.shape
    tol = dict(rtol=1e-6, atol=1e-6) if dtype == torch.float32 else {}
    torch.testing.assert_close(fast, expected, **tol)
    torch.testing.assert_close(grad.detach(), expected, **tol)


def test_non_contiguous_input_and_gradient():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(5, 6, 8, generator=gen, dtype=torch.float64)
    view = x.transpose(1, 2)  # (5, 8, 6), strided
    with torch.no_grad():
        torch.testing.assert_close(
            topk_mean(view, 2, 1), sorted_mean(view, 2, 1))
    leaf = x.clone().requires_grad_()
    topk_mean(leaf, 2, 1).sum().backward()
    # each selected entry gets 1 / k, the others nothing
    assert torch.allclose(leaf.grad.sum(1),
                          torch.ones(5, 8, dtype=torch.float64))
    assert ((leaf.grad == 0) | (leaf.grad == 0.5)).all()


def test_other_dtypes_use_torch():
    x = torch.randn(3, 10).to(torch.bfloat16)
    with torch.no_grad():
        out = topk_mean(x, 4, 1)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out, x.topk(4, dim=1).values.mean(1))


def test_invalid_k():
    with pytest.raises(ValueError, match='k must be >= 1'):
        topk_mean(torch.randn(2, 3), 0, 1)


@pytest.mark.parametrize('dim', [0, 1, 2])
def test_parallel_numpy_path_matches_brute_force(dim):
    """Split over threads along the longest other dimension (here made to
    happen on tiny inputs), the result is the same, with threads kept
    between calls or started for one."""
    gen = torch.Generator().manual_seed(dim)
    with TopkThreads(3, min_numel=0) as threads:
        for shape in [(4, 7, 9), (9, 5, 2), (2, 3, 11)]:
            x = torch.randn(*shape, generator=gen, dtype=torch.float64)
            with torch.no_grad():
                got = topk_mean(x, 2, dim, threads)
            torch.testing.assert_close(got, sorted_mean(x, 2, dim))
    assert threads._executor is None  # closed with the block
    big = torch.randn(3, 70_000, generator=gen, dtype=torch.float64)
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        with torch.no_grad():  # no threads given: a pool for this call
            got = topk_mean(big, 5, 1)
    finally:
        torch.set_num_threads(before)
    torch.testing.assert_close(got, big.topk(5, dim=1).values.mean(1))


def test_threads_are_owned_explicitly():
    """The pool starts at the first call that needs it, is kept, is remade
    for another thread count and is never copied."""
    import copy
    import pickle
    x = torch.randn(6, 40, dtype=torch.float64)
    threads = TopkThreads(2, min_numel=0)
    assert threads._executor is None  # nothing started yet
    with torch.no_grad():
        topk_mean(x, 3, 1, threads)
        pool = threads._executor
        assert pool is not None
        topk_mean(x, 3, 1, threads)
        assert threads._executor is pool  # kept between calls
        threads.num_threads = 3
        topk_mean(x, 3, 1, threads)
        assert threads._executor is not pool  # another size, another pool
        for twin in (copy.deepcopy(threads),
                     pickle.loads(pickle.dumps(threads))):
            assert twin._executor is None and twin.num_threads == 3
            torch.testing.assert_close(
                topk_mean(x, 3, 1, twin), topk_mean(x, 3, 1, threads))
            twin.close()
        # one thread, or an input under min_numel: no pool at all
        for calm in (TopkThreads(1, min_numel=0), TopkThreads(4)):
            topk_mean(x, 3, 1, calm)
            assert calm._executor is None
    threads.close()
    assert threads._executor is None
    with pytest.raises(ValueError, match='num_threads'):
        TopkThreads(0)


def _topk_in_child(threads, queue):
    with torch.no_grad():
        queue.put(
            topk_mean(torch.arange(6.).reshape(2, 3), 2, 1, threads).tolist())


@pytest.mark.skipif(not hasattr(os, 'fork'), reason='needs fork')
def test_parallel_path_works_in_a_forked_child():
    """A child forked after the parent used the thread pool has the pool
    object but not its threads; it must make its own instead of hanging."""
    threads = TopkThreads(2, min_numel=0)
    try:
        with torch.no_grad():
            # pieces slow enough that the pool starts both its threads
            topk_mean(torch.randn(4, 200_000), 2, 1, threads)
        # and lets them go idle, as they are long before a loader forks
        time.sleep(0.5)
        ctx = multiprocessing.get_context('fork')
        queue = ctx.Queue()
        child = ctx.Process(target=_topk_in_child, args=(threads, queue))
        child.start()
        try:
            got = queue.get(timeout=60)
        finally:
            child.join(10)
            if child.is_alive():
                child.kill()
        # rows [0, 1, 2] and [3, 4, 5]: the mean of the top 2
        assert got == [1.5, 4.5]
    finally:
        threads.close()


# the tracer's notes on shapes turned into constants, and torch's advice to
# trace with torch.export (the second half of the test does)
@pytest.mark.filterwarnings('ignore::torch.jit.TracerWarning')
@pytest.mark.filterwarnings('ignore:`torch.jit.trace` is deprecated')
def test_graph_capture_keeps_torch_topk():
    """Tracing (torch.onnx's TorchScript exporter) and torch.export (its
    default exporter) cannot record NumPy: there the top-k is torch.topk,
    so the captured graph computes it for any input, not the example's."""

    def f(x):
        return topk_mean(x, 2, 1)

    example = torch.randn(3, 5)
    other = torch.randn(3, 5)
    with torch.no_grad():
        traced = torch.jit.trace(f, (example, ))
        np_path = f(other)
    assert 'aten::topk' in str(traced.graph)
    torch.testing.assert_close(traced(other), np_path)

    class TopkMean(torch.nn.Module):

        def forward(self, x):
            return topk_mean(x, 2, 1)

    with torch.no_grad():
        program = torch.export.export(TopkMean(), (example, ))
    assert 'topk' in str(program.graph)
    torch.testing.assert_close(program.module()(other), np_path)
