# Copyright (c) mmovl contributors. All rights reserved.
"""Safe checkpoint loading for mmengine on torch >= 2.6.

mmengine 0.10.7 loads local checkpoints with a bare ``torch.load``. Since
torch 2.6 that means ``weights_only=True``, which refuses the few non-tensor
types mmengine itself writes into a checkpoint (the message hub's
``HistoryBuffer`` and the numpy arrays inside it), so ``--resume`` fails.
Falling back to ``weights_only=False`` would execute arbitrary pickled code
from the file. Instead mmovl replaces mmengine's local loader with one that
keeps ``weights_only=True`` and allow-lists exactly those types, and that
names the file whenever it cannot be read.
"""
import os
import os.path as osp
import pickle
import zipfile
from typing import List, Optional

import numpy as np
import torch
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader


def _numpy_globals() -> List[object]:
    """Numpy objects needed to rebuild arrays and scalars from a pickle."""
    # numpy 2 moved ``numpy.core`` to ``numpy._core``; pickles written by
    # either name resolve through whichever this numpy provides.
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy < 2
        from numpy.core import multiarray
    dtype_classes = [
        type(np.dtype(t)) for t in
        (np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8,
         np.uint16, np.uint32, np.uint64, np.float16, np.float32, np.float64)
    ]
    return [multiarray._reconstruct, multiarray.scalar, np.ndarray, np.dtype
            ] + dtype_classes


def _history_buffer_getattr(obj: object, name: str) -> object:
    """The one ``getattr`` an mmengine checkpoint needs.

    A ``HistoryBuffer`` keeps a table of its statistics methods, which
    pickles as ``getattr(HistoryBuffer, 'mean')``. The builtin ``getattr``
    could reach any attribute of any object in the file, so only public
    methods of ``HistoryBuffer`` are served.
    """
    if not (obj is HistoryBuffer or isinstance(obj, HistoryBuffer)) or \
            name.startswith('_'):
        raise pickle.UnpicklingError(
            f'getattr({type(obj).__name__}, {name!r}) is not allowed: only '
            f'public methods of HistoryBuffer are')
    return getattr(obj, name)


def mmengine_safe_globals() -> List[object]:
    """The allow-list of non-tensor types found in mmengine checkpoints.

    Returns:
        list: Classes and functions (or ``(function, 'module.name')`` pairs)
        passed to :func:`torch.serialization.safe_globals`.
    """
    return [HistoryBuffer, (_history_buffer_getattr, 'builtins.getattr')
            ] + _numpy_globals()


def safe_torch_load(filename: str,
                    map_location: Optional[object] = None) -> object:
    """Load a torch checkpoint with ``weights_only=True``.

    Only tensors, plain Python containers and the types in
    :func:`mmengine_safe_globals` can be unpickled. Every failure is raised
    with the file name in the message.

    Args:
        filename (str): Path of the checkpoint file.
        map_location (optional): As in :func:`torch.load`. Defaults to None.

    Returns:
        object: The loaded checkpoint.

    Examples:
        >>> import tempfile, torch
        >>> path = tempfile.mktemp(suffix='.pth')
        >>> torch.save({'state_dict': {'w': torch.ones(2)}}, path)
        >>> safe_torch_load(path)['state_dict']['w']
        tensor([1., 1.])
    """
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'Checkpoint file not found: {filename}')
    if os.path.getsize(filename) == 0:
        raise RuntimeError(f'Checkpoint file is empty: {filename}')
    try:
        with torch.serialization.safe_globals(mmengine_safe_globals()):
            return torch.load(
                filename, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise RuntimeError(
            f'Refused to load {filename}: it contains an object outside the '
            f'allow-list of types mmengine writes, so it may run arbitrary '
            f'code. Details: {e}') from e
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError) as e:
        raise RuntimeError(
            f'Checkpoint file {filename} is corrupt or truncated and cannot '
            f'be loaded ({type(e).__name__}: {e})') from e


def _load_from_local(filename: str, map_location=None):
    return safe_torch_load(filename, map_location=map_location)


# '' is mmengine's fallback scheme: every local path, including the ones
# ``Runner.resume`` and ``load_from`` use.
CheckpointLoader.register_scheme(prefixes='', loader=_load_from_local,
                                 force=True)
