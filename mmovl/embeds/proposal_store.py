# Copyright (c) mmovl contributors. All rights reserved.
"""A sharded on-disk store of per-image proposal boxes and embeddings.

ViLD distils CLIP's image embeddings of region proposals that are computed
once, offline (``tools/misc/precompute_vild_embeds.py``). The store is a
folder::

    store_dir/
      index.json                              # settings, image count, shards
      shard-00000-of-00042.safetensors        # images [0, S) of the data set
      shard-00001-of-00042.safetensors        # images [S, 2S) ...

Shard ``i`` holds images ``[i * shard_size, (i + 1) * shard_size)`` of the
data set, in order, as four arrays: ``img_ids`` (K,) int64, ``offsets``
(K + 1,) int64 (image ``k``'s rows are ``offsets[k]:offsets[k + 1]``),
``boxes`` (N, 4) float32 xyxy in original-image pixels and ``embeds`` (N, D).
Every file is written to a temporary file and moved into place with
``os.replace``, so a shard is either complete or absent: a run that stops
half way leaves the finished shards, and a rerun computes only the others.
Each shard carries the hash of the settings it was made with, so a shard of
another run is never taken for one of this run.

Only safetensors and JSON are read; this module needs neither mmdet nor
torch.
"""
import hashlib
import json
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from mmovl.utils.fileio import TMP_PREFIX, atomic_write, atomic_write_text

__all__ = [
    'STORE_FORMAT', 'ProposalEmbedStore', 'ProposalEmbedStoreError',
    'make_store_index', 'read_shard_ids', 'read_store_index',
    'remove_stale_tmp_files', 'settings_hash', 'shard_file_name',
    'shard_is_complete', 'write_shard', 'write_store_index'
]

STORE_FORMAT = 'mmovl-clip-proposal-embeds'
STORE_VERSION = 1
INDEX_FILE = 'index.json'


class ProposalEmbedStoreError(ValueError):
    """A store file exists but is unreadable or belongs to another run."""


def settings_hash(settings: dict) -> str:
    """SHA-256 of the canonical JSON of ``settings`` (sorted keys).

    Args:
        settings (dict): JSON-serialisable settings of a run.

    Returns:
        str: A 64-character hexadecimal digest.

    Examples:
        >>> settings_hash({'a': 1, 'b': 2}) == settings_hash({'b': 2, 'a': 1})
        True
    """
    text = json.dumps(settings, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode('utf-8')).hexdigest()


def shard_file_name(index: int, num_shards: int) -> str:
    """The file name of shard ``index`` out of ``num_shards``.

    Args:
        index (int): The shard's position, from 0.
        num_shards (int): How many shards the store has.

    Returns:
        str: E.g. ``'shard-00003-of-00010.safetensors'``.

    Examples:
        >>> shard_file_name(3, 10)
        'shard-00003-of-00010.safetensors'
    """
    return f'shard-{index:05d}-of-{num_shards:05d}.safetensors'


def write_store_index(store_dir: str, index: dict) -> str:
    """Write ``index.json`` of a store atomically.

    Args:
        store_dir (str): The store folder.
        index (dict): The index (see :func:`read_store_index`).

    Returns:
        str: The path written.
    """
    path = osp.join(store_dir, INDEX_FILE)
    return atomic_write_text(path, json.dumps(index, indent=1,
                                              sort_keys=True))


def read_store_index(store_dir: str) -> dict:
    """Read and check ``index.json`` of a store.

    Args:
        store_dir (str): The store folder.

    Returns:
        dict: With ``format``, ``version``, ``settings``, ``settings_hash``,
        ``num_images``, ``shard_size``, ``num_shards``, ``embed_dim`` and
        ``shards`` (the shard file names, in order).

    Raises:
        FileNotFoundError: If there is no index.
        ProposalEmbedStoreError: If the index is not one of this format.
    """
    path = osp.join(store_dir, INDEX_FILE)
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'No proposal-embedding store at {store_dir}: {path} is missing '
            '(write the store with tools/misc/precompute_vild_embeds.py).')
    try:
        with open(path, encoding='utf-8') as f:
            index = json.load(f)
    except (OSError, ValueError) as e:
        raise ProposalEmbedStoreError(
            f'Cannot read the store index {path}: {e}') from e
    required = ('format', 'version', 'settings_hash', 'num_images',
                'shard_size', 'num_shards', 'embed_dim', 'shards')
    missing = [k for k in required if k not in index] \
        if isinstance(index, dict) else list(required)
    if missing or index['format'] != STORE_FORMAT:
        raise ProposalEmbedStoreError(
            f'{path} is not an index of a {STORE_FORMAT} store '
            f'(missing fields: {missing}).')
    if index['version'] != STORE_VERSION:
        raise ProposalEmbedStoreError(
            f'{path} has store version {index["version"]}; this mmovl reads '
            f'version {STORE_VERSION}. Recompute the store.')
    if len(index['shards']) != index['num_shards']:
        raise ProposalEmbedStoreError(
            f'{path} lists {len(index["shards"])} shard files for '
            f'num_shards={index["num_shards"]}.')
    return index


def write_shard(path: str,
                img_ids: Sequence[int],
                boxes: Sequence[np.ndarray],
                embeds: Sequence[np.ndarray],
                run_hash: str,
                shard_index: int,
                dtype: str = 'float16') -> str:
    """Write one shard atomically.

    Args:
        path (str): The shard file.
        img_ids (Sequence[int]): The images' ids, in data-set order.
        boxes (Sequence[np.ndarray]): Per image, (M_i, 4) xyxy boxes in
            original-image pixels.
        embeds (Sequence[np.ndarray]): Per image, (M_i, D) embeddings.
        run_hash (str): :func:`settings_hash` of the run's settings.
        shard_index (int): The shard's position in the store.
        dtype (str): Storage dtype of the embeddings, ``'float16'`` (half the
            size) or ``'float32'``. Defaults to ``'float16'``.

    Returns:
        str: ``path``.
    """
    from safetensors.numpy import save_file

    if not (len(img_ids) == len(boxes) == len(embeds)):
        raise ValueError(f'{len(img_ids)} image ids, {len(boxes)} box arrays '
                         f'and {len(embeds)} embedding arrays for {path}.')
    if dtype not in ('float16', 'float32'):
        raise ValueError(f"dtype must be 'float16' or 'float32', got "
                         f'{dtype!r}.')
    dims = {e.shape[1] for e in embeds if e.ndim == 2}
    if len(dims) != 1:
        raise ValueError(f'Embeddings for {path} must be 2-D with one '
                         f'width, got widths {sorted(dims)}.')
    for i, (b, e) in enumerate(zip(boxes, embeds)):
        if b.ndim != 2 or b.shape[1] != 4 or len(b) != len(e):
            raise ValueError(
                f'Image {img_ids[i]}: boxes {b.shape} and embeddings '
                f'{e.shape} do not pair up as (M, 4) and (M, D).')
    counts = np.array([len(b) for b in boxes], dtype=np.int64)
    tensors = dict(
        img_ids=np.asarray(img_ids, dtype=np.int64),
        offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        boxes=np.concatenate(boxes).astype(np.float32).reshape(-1, 4),
        embeds=np.concatenate(embeds).astype(dtype).reshape(
            -1, dims.pop()))
    metadata = dict(format=STORE_FORMAT, version=str(STORE_VERSION),
                    settings_hash=run_hash, shard_index=str(shard_index))
    return atomic_write(
        path, lambda tmp: save_file(tensors, tmp, metadata=metadata))


def _open_shard(path: str, run_hash: str, shard_index: int):
    """Open a shard lazily (memory-mapped) after checking its header."""
    from safetensors import safe_open

    try:
        handle = safe_open(path, framework='np')
        metadata = handle.metadata() or {}
        keys = set(handle.keys())
    except Exception as e:  # safetensors raises several types
        raise ProposalEmbedStoreError(
            f'Shard file {path} is corrupt or truncated ({e}); delete it and '
            'rerun tools/misc/precompute_vild_embeds.py to recompute it.'
        ) from e
    missing = {'img_ids', 'offsets', 'boxes', 'embeds'} - keys
    if missing or metadata.get('format') != STORE_FORMAT:
        raise ProposalEmbedStoreError(
            f'Shard file {path} is not a {STORE_FORMAT} shard (missing '
            f'arrays: {sorted(missing)}).')
    if metadata.get('settings_hash') != run_hash or \
            metadata.get('shard_index') != str(shard_index):
        raise ProposalEmbedStoreError(
            f'Shard file {path} was written by another run (settings '
            f'{metadata.get("settings_hash", "?")[:12]}, shard '
            f'{metadata.get("shard_index")}) than its index describes '
            f'(settings {run_hash[:12]}, shard {shard_index}).')
    return handle


def read_shard_ids(path: str, run_hash: str,
                   shard_index: int) -> Tuple[np.ndarray, np.ndarray]:
    """The image ids and row offsets of a shard, without its big arrays.

    Args:
        path (str): The shard file.
        run_hash (str): The settings hash the shard must carry.
        shard_index (int): The position the shard must carry.

    Returns:
        tuple[np.ndarray, np.ndarray]: ``img_ids`` (K,) and ``offsets``
        (K + 1,).

    Raises:
        FileNotFoundError: If the shard is missing.
        ProposalEmbedStoreError: If it is unreadable or inconsistent.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'Shard file {path} is missing.')
    handle = _open_shard(path, run_hash, shard_index)
    try:
        img_ids = handle.get_tensor('img_ids')
        offsets = handle.get_tensor('offsets')
        num_rows = handle.get_slice('boxes').get_shape()[0]
        emb_rows = handle.get_slice('embeds').get_shape()[0]
    except Exception as e:
        raise ProposalEmbedStoreError(
            f'Shard file {path} is corrupt ({e}).') from e
    if len(offsets) != len(img_ids) + 1 or offsets[0] != 0 or \
            offsets[-1] != num_rows or emb_rows != num_rows or \
            np.any(np.diff(offsets) < 0):
        raise ProposalEmbedStoreError(
            f'Shard file {path} has inconsistent offsets for its '
            f'{len(img_ids)} images and {num_rows} rows.')
    return img_ids, offsets


class ProposalEmbedStore:
    """Read-only access to a proposal-embedding store, one image at a time.

    Opening reads the index and every shard's image ids (not the big
    arrays); a missing, corrupt or foreign shard is reported by its file
    name, so training never starts on an incomplete store. Lookups read only
    the rows of the image asked for, from memory-mapped files. Handles are
    reopened after a fork, so one store may be shared by data-loader workers.

    Args:
        store_dir (str): The store folder.

    Examples:
        >>> store = ProposalEmbedStore('data/vild_embeds')  # doctest: +SKIP
        >>> boxes, embeds = store.get(139)  # doctest: +SKIP
        >>> boxes.shape, embeds.shape  # doctest: +SKIP
        ((300, 4), (300, 512))
    """

    def __init__(self, store_dir: str) -> None:
        self.store_dir = str(store_dir)
        self.index = read_store_index(self.store_dir)
        self._run_hash = self.index['settings_hash']
        self._paths = [
            osp.join(self.store_dir, name) for name in self.index['shards']
        ]
        missing = [p for p in self._paths if not osp.isfile(p)]
        if missing:
            raise FileNotFoundError(
                f'Proposal-embedding store {self.store_dir} is incomplete: '
                f'{len(missing)} of {len(self._paths)} shard files are '
                f'missing, e.g. {missing[0]}. Rerun '
                'tools/misc/precompute_vild_embeds.py with the same '
                'arguments to compute them.')
        self._rows: Dict[int, Tuple[int, int, int]] = {}
        for shard, path in enumerate(self._paths):
            img_ids, offsets = read_shard_ids(path, self._run_hash, shard)
            for k, img_id in enumerate(img_ids.tolist()):
                self._rows[img_id] = (shard, int(offsets[k]),
                                      int(offsets[k + 1]))
        self._handles: Dict[int, object] = {}
        self._pid = os.getpid()

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, img_id: int) -> bool:
        return int(img_id) in self._rows

    @property
    def img_ids(self) -> List[int]:
        """list[int]: The ids of the stored images."""
        return list(self._rows)

    @property
    def embed_dim(self) -> int:
        """int: The embeddings' width."""
        return int(self.index['embed_dim'])

    @property
    def teacher(self) -> Optional[dict]:
        """dict | None: The CLIP teacher the store was made with
        (``model_name`` and ``weights``, the SHA-256 of its checkpoint), as
        ``tools/misc/precompute_vild_embeds.py`` records it; None for a
        store that records none."""
        teacher = (self.index.get('settings') or {}).get('teacher')
        if not isinstance(teacher, dict) or 'model_name' not in teacher \
                or 'weights' not in teacher:
            return None
        return dict(model_name=teacher['model_name'],
                    weights=teacher['weights'])

    def _handle(self, shard: int):
        if os.getpid() != self._pid:  # a forked worker: own handles
            self._handles, self._pid = {}, os.getpid()
        if shard not in self._handles:
            path = self._paths[shard]
            if not osp.isfile(path):
                raise FileNotFoundError(
                    f'Shard file {path} of proposal-embedding store '
                    f'{self.store_dir} has gone missing.')
            self._handles[shard] = _open_shard(path, self._run_hash, shard)
        return self._handles[shard]

    def get(self, img_id: int) -> Tuple[np.ndarray, np.ndarray]:
        """The boxes and embeddings of one image, as float32 arrays.

        Args:
            img_id (int): The image id.

        Returns:
            tuple[np.ndarray, np.ndarray]: (M, 4) xyxy boxes in
            original-image pixels and (M, D) embeddings.

        Raises:
            KeyError: If the image is not in the store.
        """
        try:
            shard, start, end = self._rows[int(img_id)]
        except (KeyError, TypeError, ValueError):
            raise KeyError(
                f'Image {img_id!r} is not in the proposal-embedding store '
                f'{self.store_dir} ({len(self._rows)} images); precompute '
                'the store on the data set you train on.') from None
        if start == end:  # safetensors refuses an empty slice at the end
            return (np.zeros((0, 4), np.float32),
                    np.zeros((0, self.embed_dim), np.float32))
        handle = self._handle(shard)
        try:
            boxes = handle.get_slice('boxes')[start:end]
            embeds = handle.get_slice('embeds')[start:end]
        except Exception as e:
            raise ProposalEmbedStoreError(
                f'Cannot read image {img_id} from shard file '
                f'{self._paths[shard]}: {e}') from e
        return (np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
                np.asarray(embeds, dtype=np.float32).reshape(
                    -1, self.embed_dim))

    def __getstate__(self) -> dict:
        # Open file handles do not travel to spawned workers; reopen there.
        state = self.__dict__.copy()
        state['_handles'] = {}
        return state


def make_store_index(settings: dict, num_images: int, shard_size: int,
                     embed_dim: int) -> dict:
    """The index of a store of ``num_images`` images.

    Args:
        settings (dict): JSON-serialisable settings of the run.
        num_images (int): Images in the data set.
        shard_size (int): Images per shard.
        embed_dim (int): Embedding width.

    Returns:
        dict: An index for :func:`write_store_index`.
    """
    if shard_size < 1:
        raise ValueError(f'shard_size must be positive, got {shard_size}.')
    num_shards = max(1, -(-num_images // shard_size))
    return dict(
        format=STORE_FORMAT,
        version=STORE_VERSION,
        settings=settings,
        settings_hash=settings_hash(settings),
        num_images=num_images,
        shard_size=shard_size,
        num_shards=num_shards,
        embed_dim=embed_dim,
        shards=[shard_file_name(i, num_shards) for i in range(num_shards)])


def remove_stale_tmp_files(store_dir: str) -> List[str]:
    """Delete temporary files a killed writer left in ``store_dir``.

    Args:
        store_dir (str): The store folder.

    Returns:
        list[str]: The removed paths.
    """
    removed = []
    if osp.isdir(store_dir):
        for name in os.listdir(store_dir):
            if name.startswith(TMP_PREFIX):
                path = osp.join(store_dir, name)
                os.remove(path)
                removed.append(path)
    return removed


def shard_is_complete(path: str, run_hash: str, shard_index: int,
                      img_ids: Sequence[int]) -> Optional[str]:
    """Why a shard must be (re)computed, or None if it is complete.

    Args:
        path (str): The shard file.
        run_hash (str): The settings hash it must carry.
        shard_index (int): The position it must carry.
        img_ids (Sequence[int]): The image ids it must hold, in order.

    Returns:
        str | None: A reason, or None.
    """
    if not osp.isfile(path):
        return 'missing'
    try:
        stored, _ = read_shard_ids(path, run_hash, shard_index)
    except (ProposalEmbedStoreError, FileNotFoundError) as e:
        return str(e)
    if stored.tolist() != [int(i) for i in img_ids]:
        return f'{path} holds other images than the data set gives'
    return None
