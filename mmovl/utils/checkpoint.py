# Copyright (c) mmovl contributors. All rights reserved.
"""Safe checkpoint loading for mmengine on torch >= 2.6, and the check that
a state dict fits a model.

mmengine 0.10.7 loads local checkpoints with a bare ``torch.load``. Since
torch 2.6 that means ``weights_only=True``, which refuses the few non-tensor
types mmengine itself writes into a checkpoint (the message hub's
``HistoryBuffer`` and the numpy arrays inside it), so ``--resume`` fails.
Falling back to ``weights_only=False`` would execute arbitrary pickled code
from the file. Instead mmovl has a local loader that keeps
``weights_only=True`` and allow-lists exactly those types, and that names
the file whenever it cannot be read (:func:`safe_torch_load`).

Importing mmovl does **not** install it into mmengine's
``CheckpointLoader`` (that would change how every project that imports
mmovl loads its checkpoints). It is switched on explicitly:

- by mmovl's own entry points (``tools/train.py``, ``tools/test.py``,
  :func:`enable_safe_checkpoint_loading`), and scoped around the loads of
  its library code (:func:`scoped_safe_checkpoint_loading`);
- by other projects, with the opt-in module
  :mod:`mmovl.utils.safe_checkpoint_loading`, e.g. in a config::

      custom_imports = dict(
          imports=['mmovl', 'mmovl.utils.safe_checkpoint_loading'],
          allow_failed_imports=False)
"""
import os
import os.path as osp
import pickle
import zipfile
from contextlib import contextmanager
from typing import Callable, Iterator, List, Mapping, Optional, Union

import numpy as np
import torch
import torch.nn as nn
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader, load_from_local


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
    # mmengine logs 'Loads checkpoint by <name[10:]> backend'.
    return safe_torch_load(filename, map_location=map_location)


def _local_loader() -> Optional[Callable]:
    """The loader mmengine uses for local paths now."""
    # '' is mmengine's fallback scheme: every local path, including the ones
    # ``Runner.resume`` and ``load_from`` use. mmengine has no public getter
    # of a registered scheme.
    return CheckpointLoader._schemes.get('')


def _set_local_loader(loader: Callable) -> None:
    CheckpointLoader.register_scheme(prefixes='', loader=loader, force=True)


def enable_safe_checkpoint_loading() -> None:
    """Load local checkpoints through mmengine with :func:`safe_torch_load`.

    Replaces the loader of mmengine's ``CheckpointLoader`` for local paths
    (the one ``Runner.resume``, ``load_from``, ``load_checkpoint`` and
    ``init_cfg=dict(type='Pretrained')`` use) for the rest of the process:
    ``weights_only=True`` with the allow-list of
    :func:`mmengine_safe_globals`, so mmengine's own checkpoints resume on
    torch >= 2.6 and pickled code is refused. Calling it again is a no-op.
    mmovl's tools call it; other projects import
    :mod:`mmovl.utils.safe_checkpoint_loading` (e.g. in ``custom_imports``).
    For a scoped switch see :func:`scoped_safe_checkpoint_loading`.
    """
    _set_local_loader(_load_from_local)


def safe_checkpoint_loading_enabled() -> bool:
    """bool: Whether mmengine loads local checkpoints with
    :func:`safe_torch_load` now."""
    return _local_loader() is _load_from_local


@contextmanager
def scoped_safe_checkpoint_loading() -> Iterator[None]:
    """:func:`enable_safe_checkpoint_loading` inside a ``with`` block only.

    The local loader mmengine had before (its own ``load_from_local``, or
    whatever another project registered) is put back on exit.

    Examples:
        >>> from mmengine.runner import load_checkpoint
        >>> with scoped_safe_checkpoint_loading():
        ...     load_checkpoint(model, 'epoch_1.pth')  # doctest: +SKIP
    """
    previous = _local_loader() or load_from_local
    _set_local_loader(_load_from_local)
    try:
        yield
    finally:
        _set_local_loader(previous)


# -- does a state dict fit a model? -------------------------------------------
Shapes = Mapping[str, Union[torch.Tensor, torch.Size, tuple]]


def _shape(value: Union[torch.Tensor, torch.Size, tuple]) -> tuple:
    return tuple(value.shape) if isinstance(value, torch.Tensor) else \
        tuple(value)


def _head(keys: List[str], max_keys: int) -> str:
    more = f' and {len(keys) - max_keys} more' if len(keys) > max_keys \
        else ''
    return ', '.join(keys[:max_keys]) + more


def state_dict_mismatches(expected: Union[nn.Module, Shapes],
                          state_dict: Mapping[str, torch.Tensor],
                          ignore: tuple = (),
                          max_keys: int = 5) -> List[str]:
    """What keeps ``state_dict`` from having exactly the keys and shapes of
    ``expected``, one phrase per kind of problem (empty when it fits).

    Args:
        expected (nn.Module | Mapping): A model (its ``state_dict()``), or
            its keys mapped to tensors or shapes.
        state_dict (Mapping[str, torch.Tensor]): The weights to check.
        ignore (tuple[str]): Prefixes of keys of ``state_dict`` that may be
            there without being expected. Defaults to ().
        max_keys (int): Keys named per problem; the rest are counted.
            Defaults to 5.

    Returns:
        list[str]: e.g. ``['missing keys: a.weight', 'shape mismatch:
        b.bias (3,) (expected (4,))']``.
    """
    if isinstance(expected, nn.Module):
        expected = expected.state_dict()
    shapes = {k: _shape(v) for k, v in expected.items()}
    missing = sorted(set(shapes) - set(state_dict))
    unexpected = sorted(k for k in set(state_dict) - set(shapes)
                        if not (ignore and k.startswith(tuple(ignore))))
    mismatched = sorted(
        f'{k} {tuple(v.shape)} (expected {shapes[k]})'
        for k, v in state_dict.items()
        if k in shapes and tuple(v.shape) != shapes[k])
    return [
        f'{what}: {_head(keys, max_keys)}'
        for what, keys in (('missing keys', missing), ('unexpected keys',
                                                       unexpected),
                           ('shape mismatch', mismatched)) if keys
    ]


def check_state_dict_fits(expected: Union[nn.Module, Shapes],
                          state_dict: Mapping[str, torch.Tensor],
                          what: str,
                          hint: str = '',
                          ignore: tuple = (),
                          error: type = ValueError) -> None:
    """Raise unless ``state_dict`` has exactly the keys and shapes of
    ``expected`` (the one check mmovl makes before loading weights strictly:
    the CLIP teacher and backbone, the inferencers, the converters).

    Args:
        expected (nn.Module | Mapping): As :func:`state_dict_mismatches`.
        state_dict (Mapping[str, torch.Tensor]): The weights to check.
        what (str): The start of the message, naming the file and the model,
            e.g. ``'Checkpoint a.pth does not fit MKT'``.
        hint (str): A sentence appended to the message. Defaults to ''.
        ignore (tuple[str]): As :func:`state_dict_mismatches`.
        error (type): The exception raised. Defaults to ValueError.

    Raises:
        ValueError: (or ``error``) ``'<what>: missing keys: ...; unexpected
        keys: ...; shape mismatch: ... <hint>'``.

    Examples:
        >>> weights = {'weight': torch.ones(3, 2)}
        >>> check_state_dict_fits(nn.Linear(2, 3), weights,
        ...                       'w.pth does not fit the layer')
        Traceback (most recent call last):
        ...
        ValueError: w.pth does not fit the layer: missing keys: bias.
    """
    problems = state_dict_mismatches(expected, state_dict, ignore=ignore)
    if problems:
        raise error(f'{what}: ' + '; '.join(problems) + '.' +
                    (f' {hint}' if hint else ''))
