# Copyright (c) mmovl contributors. All rights reserved.
import hashlib
import os
import shutil
from unittest import mock

import pytest
import torch

from mmovl.embeds.label_cache import (CorruptCacheError, EmbeddingCache,
                                      make_cache_key, sha256_file,
                                      tensor_sha256)


def _temp_files(folder):
    return [n for n in os.listdir(folder) if n.startswith('.tmp-')]


def test_sha256_file(tmp_path):
    path = tmp_path / 'weights.bin'
    path.write_bytes(b'abc' * 1000)
    assert sha256_file(str(path), chunk_size=7) == hashlib.sha256(
        b'abc' * 1000).hexdigest()

    # Rewritten in place: hashed again, not served from the memo.
    path.write_bytes(b'xyz')
    stat = os.stat(path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert sha256_file(str(path)) == hashlib.sha256(b'xyz').hexdigest()


def test_make_cache_key():
    key = make_cache_key(model='m', names=['a', 'b'], templates=['{}'])
    assert len(key) == 64
    assert key == make_cache_key(templates=['{}'], names=['a', 'b'], model='m')
    assert key != make_cache_key(model='m', names=['b', 'a'], templates=['{}'])
    assert key != make_cache_key(model='m', names=['a', 'b'], templates=['x'])
    assert key != make_cache_key(model='n', names=['a', 'b'], templates=['{}'])


def test_save_and_load(tmp_path):
    cache = EmbeddingCache(str(tmp_path / 'cache'), prefix='test')
    key = make_cache_key(names=['a', 'b', 'c'])
    assert cache.load(key) is None  # the folder does not exist yet

    embeds = torch.randn(3, 8)
    path = cache.save(key, embeds, metadata=dict(note='hello'))
    assert path == cache.path(key)
    assert os.path.basename(path) == f'test-{key}.safetensors'
    assert torch.equal(cache.load(key), embeds)
    assert torch.equal(cache.load(key, shape=(3, 8)), embeds)

    # Overwriting goes through a temporary file too, and leaves none behind.
    cache.save(key, embeds * 2)
    assert torch.equal(cache.load(key), embeds * 2)
    assert _temp_files(cache.cache_dir) == []

    cache.remove(key)
    assert cache.load(key) is None
    cache.remove(key)  # removing a missing entry is fine

    with pytest.raises(ValueError, match='2-D'):
        cache.save(key, torch.ones(3))


def test_corrupt_entries_name_the_file(tmp_path):
    cache = EmbeddingCache(str(tmp_path))
    key, other = make_cache_key(i=1), make_cache_key(i=2)
    cache.save(key, torch.ones(2, 4))

    with pytest.raises(CorruptCacheError, match='shape') as info:
        cache.load(key, shape=(3, 4))
    assert cache.path(key) in str(info.value)

    # A file under the wrong name: its stored key gives it away.
    shutil.copy(cache.path(key), cache.path(other))
    with pytest.raises(CorruptCacheError, match='written for key') as info:
        cache.load(other)
    assert cache.path(other) in str(info.value)

    with open(cache.path(key), 'wb') as f:
        f.write(b'not a safetensors file')
    with pytest.raises(CorruptCacheError, match='Cannot read') as info:
        cache.load(key)
    assert cache.path(key) in str(info.value)
    assert isinstance(info.value, ValueError)


def test_failed_write_leaves_nothing(tmp_path):
    cache = EmbeddingCache(str(tmp_path))
    key = make_cache_key(i=1)
    with mock.patch('safetensors.torch.save_file',
                    side_effect=OSError('disk full')):
        with pytest.raises(OSError, match='disk full'):
            cache.save(key, torch.ones(2, 2))
    assert os.listdir(tmp_path) == []

    # A failed rewrite keeps the previous entry intact.
    cache.save(key, torch.ones(2, 2))
    with mock.patch('os.replace', side_effect=OSError('boom')):
        with pytest.raises(OSError, match='boom'):
            cache.save(key, torch.zeros(2, 2))
    assert torch.equal(cache.load(key), torch.ones(2, 2))
    assert _temp_files(tmp_path) == []


def _rewrite_matrix(path, change):
    """Edit a cache file's matrix in place, keeping its header, as a user
    (or a bit flip) might."""
    from safetensors import safe_open
    from safetensors.torch import save_file
    with safe_open(path, framework='pt') as f:
        header = f.metadata()
        tensor = f.get_tensor('embeddings')
    save_file({'embeddings': change(tensor).contiguous()}, path,
              metadata=header)


@pytest.mark.parametrize('edit,message', [
    (lambda t: t.flip(0), 'changed after it was written'),
    (lambda t: t + 1e-6, 'changed after it was written'),
])
def test_edited_rows_are_refused(tmp_path, edit, message):
    cache = EmbeddingCache(str(tmp_path))
    key = make_cache_key(names=['cat', 'dog', 'fox'])
    cache.save(key, torch.randn(3, 4))
    _rewrite_matrix(cache.path(key), edit)
    with pytest.raises(CorruptCacheError, match=message) as info:
        cache.load(key, shape=(3, 4))
    assert cache.path(key) in str(info.value)


def test_non_finite_rows_are_refused_on_save_and_load(tmp_path):
    cache = EmbeddingCache(str(tmp_path))
    key = make_cache_key(i=1)
    bad = torch.ones(3, 2)
    bad[1, 0] = float('nan')
    with pytest.raises(ValueError, match='NaN'):
        cache.save(key, bad)
    # Written by hand with a matching hash: the load still refuses it.
    from safetensors.torch import save_file
    save_file({'embeddings': bad},
              cache.path(key),
              metadata=dict(key=key, format_version='2',
                            content_sha256=tensor_sha256(bad)))
    with pytest.raises(CorruptCacheError, match=r'NaN.*rows \[1\]'):
        cache.load(key)


def test_tensor_sha256_against_hashlib():
    t = torch.arange(6, dtype=torch.float32).view(2, 3)
    expected = hashlib.sha256(b'torch.float32(2, 3)')
    expected.update(t.numpy().tobytes())
    assert tensor_sha256(t) == expected.hexdigest()
    assert tensor_sha256(t.t()) != tensor_sha256(t)  # shape counts
