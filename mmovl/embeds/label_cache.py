# Copyright (c) mmovl contributors. All rights reserved.
"""An on-disk cache of embedding matrices, independent of any framework.

Each entry is one safetensors file named by a key, the SHA-256 of whatever
determines the embeddings (see :func:`make_cache_key`). Files are written to a
temporary file in the cache folder and moved into place with ``os.replace``,
so a reader never sees a half-written entry, even when several processes fill
the same cache.

A file that cannot be read, whose stored key or shape does not match, whose
matrix was changed after it was written (each file records the SHA-256 of its
matrix) or holds a NaN or infinity raises :class:`CorruptCacheError` naming
the file; what to do about it (recompute, abort) is the caller's policy.
"""
import hashlib
import json
import os
import os.path as osp
from typing import Any, Dict, Optional, Tuple

import torch

from mmovl.utils.fileio import atomic_write

__all__ = [
    'CorruptCacheError', 'EmbeddingCache', 'make_cache_key', 'sha256_file',
    'tensor_sha256', 'weights_id'
]

_TENSOR_NAME = 'embeddings'
# 2: the header records the matrix's SHA-256 (``content_sha256``).
_FORMAT_VERSION = '2'
# (realpath, size, mtime_ns) -> hex digest; hashing a CLIP checkpoint takes
# seconds, so do it once per file and process.
_DIGESTS: Dict[tuple, str] = {}


class CorruptCacheError(ValueError):
    """A cache file exists but does not hold a valid entry for its key."""


def sha256_file(path: str, chunk_size: int = 1 << 20) -> str:
    """SHA-256 of a file's content, read in chunks and memoised per process.

    The memo is keyed by the file's real path, size and modification time, so
    a file rewritten in place is hashed again.

    Args:
        path (str): The file to hash.
        chunk_size (int): Bytes read at a time. Defaults to 1 MiB.

    Returns:
        str: The hexadecimal digest.

    Examples:
        >>> import tempfile
        >>> with tempfile.NamedTemporaryFile(delete=False) as f:
        ...     _ = f.write(b'abc')
        >>> sha256_file(f.name)[:16]
        'ba7816bf8f01cfea'
    """
    stat = os.stat(path)
    memo_key = (osp.realpath(path), stat.st_size, stat.st_mtime_ns)
    if memo_key not in _DIGESTS:
        digest = hashlib.sha256()
        with open(path, 'rb') as f:
            for chunk in iter(lambda: f.read(chunk_size), b''):
                digest.update(chunk)
        _DIGESTS[memo_key] = digest.hexdigest()
    return _DIGESTS[memo_key]


def weights_id(checkpoint: Optional[str] = None,
               pretrained: Optional[str] = None) -> str:
    """What identifies a CLIP's weights in caches and stores:
    ``'open_clip:<tag>'`` for an open_clip pretrained tag, else
    ``'sha256:<hex>'`` of the checkpoint file's content (memoised).

    Examples:
        >>> weights_id(pretrained='openai')
        'open_clip:openai'
    """
    if pretrained is not None:
        return f'open_clip:{pretrained}'
    if checkpoint is None:
        raise ValueError('weights_id needs a checkpoint or a pretrained tag')
    return f'sha256:{sha256_file(osp.expanduser(str(checkpoint)))}'


def make_cache_key(**fields: Any) -> str:
    """Hash JSON-serialisable fields into a cache key.

    The fields are serialised as canonical JSON (sorted keys), so the key does
    not depend on argument order, while list order (e.g. of label names, which
    fixes the row order) does matter.

    Args:
        **fields: JSON-serialisable values (str, numbers, lists, dicts).

    Returns:
        str: A 64-character hexadecimal key.

    Examples:
        >>> key = make_cache_key(model='ViT-B-16', names=['cat', 'dog'])
        >>> key == make_cache_key(names=['cat', 'dog'], model='ViT-B-16')
        True
        >>> key == make_cache_key(model='ViT-B-16', names=['dog', 'cat'])
        False
    """
    text = json.dumps(fields, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode('utf-8')).hexdigest()


def tensor_sha256(tensor: torch.Tensor) -> str:
    """SHA-256 of a tensor's dtype, shape and bytes (C order, on the CPU).

    Examples:
        >>> import torch
        >>> a = tensor_sha256(torch.eye(2))
        >>> a == tensor_sha256(torch.eye(2).flip(0))
        False
    """
    t = tensor.detach().cpu().contiguous()
    digest = hashlib.sha256(f'{t.dtype}{tuple(t.shape)}'.encode())
    digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b'')
    return digest.hexdigest()


class EmbeddingCache:
    """A folder of embedding matrices stored as safetensors files.

    Args:
        cache_dir (str): The folder; created when the first entry is saved.
        prefix (str): Start of every file name, telling the folder's users
            apart. Defaults to ``'emb'``.

    Examples:
        >>> import tempfile, torch
        >>> cache = EmbeddingCache(tempfile.mkdtemp())
        >>> key = make_cache_key(names=['cat', 'dog'])
        >>> cache.load(key) is None
        True
        >>> _ = cache.save(key, torch.eye(2))
        >>> cache.load(key, shape=(2, 2))
        tensor([[1., 0.],
                [0., 1.]])
    """

    def __init__(self, cache_dir: str, prefix: str = 'emb') -> None:
        self.cache_dir = str(cache_dir)
        self.prefix = prefix

    def path(self, key: str) -> str:
        """The file that holds the entry for ``key``."""
        return osp.join(self.cache_dir, f'{self.prefix}-{key}.safetensors')

    def load(self,
             key: str,
             shape: Optional[Tuple[int, int]] = None
             ) -> Optional[torch.Tensor]:
        """Read the entry for ``key``.

        Args:
            key (str): The entry's key.
            shape (tuple[int, int], optional): The shape the matrix must
                have. Defaults to None (any 2-D shape).

        Returns:
            torch.Tensor | None: The (CPU) matrix, or None if there is no
            entry.

        Raises:
            CorruptCacheError: If the file exists but cannot be read, or holds
                another key or a matrix of the wrong shape.
        """
        from safetensors import safe_open

        path = self.path(key)
        if not osp.isfile(path):
            return None
        try:
            with safe_open(path, framework='pt', device='cpu') as f:
                metadata = f.metadata() or {}
                tensor = f.get_tensor(_TENSOR_NAME)
        except Exception as e:  # safetensors raises several types
            raise CorruptCacheError(
                f'Cannot read embedding cache file {path}: {e}') from e
        if metadata.get('key') != key:
            raise CorruptCacheError(
                f'Embedding cache file {path} was written for key '
                f'{metadata.get("key")!r}, not {key!r}.')
        expected = tuple(shape) if shape is not None else None
        if tensor.ndim != 2 or (expected is not None
                                and tuple(tensor.shape) != expected):
            raise CorruptCacheError(
                f'Embedding cache file {path} holds a tensor of shape '
                f'{tuple(tensor.shape)}, expected {expected or "2-D"}.')
        recorded = metadata.get('content_sha256')
        if recorded is None:
            raise CorruptCacheError(
                f'Embedding cache file {path} records no content hash (an '
                'older cache format); it cannot be checked.')
        if tensor_sha256(tensor) != recorded:
            raise CorruptCacheError(
                f'Embedding cache file {path}: its matrix was changed after '
                'it was written (content SHA-256 differs from the recorded '
                'one).')
        if not torch.isfinite(tensor).all():
            rows = (~torch.isfinite(tensor)).any(1).nonzero().flatten()
            raise CorruptCacheError(
                f'Embedding cache file {path} holds NaN or infinite values '
                f'(rows {rows[:10].tolist()}).')
        return tensor

    def save(self,
             key: str,
             embeddings: torch.Tensor,
             metadata: Optional[Dict[str, str]] = None) -> str:
        """Write the entry for ``key`` atomically, replacing any old one.

        Args:
            key (str): The entry's key.
            embeddings (torch.Tensor): A 2-D matrix; stored from the CPU.
            metadata (dict[str, str], optional): Extra strings stored in the
                file's header, for people inspecting the cache. Defaults to
                None.

        Returns:
            str: The path of the written file.
        """
        from safetensors.torch import save_file

        if embeddings.ndim != 2:
            raise ValueError('Expected a 2-D embedding matrix, got shape '
                             f'{tuple(embeddings.shape)}.')
        if not torch.isfinite(embeddings).all():
            raise ValueError('Refusing to cache embeddings holding NaN or '
                             f'infinite values (key {key}).')
        matrix = embeddings.detach().cpu().contiguous()
        header = dict(metadata or {})
        header.update(key=key, format_version=_FORMAT_VERSION,
                      content_sha256=tensor_sha256(matrix))
        tensors = {_TENSOR_NAME: matrix}
        return atomic_write(
            self.path(key),
            lambda tmp: save_file(tensors, tmp, metadata=header))

    def remove(self, key: str) -> None:
        """Delete the entry for ``key`` if there is one."""
        path = self.path(key)
        if osp.exists(path):
            os.remove(path)
