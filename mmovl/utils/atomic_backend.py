# Copyright (c) mmovl contributors. All rights reserved.
"""A local file backend for mmengine whose writes are atomic.

mmengine's ``CheckpointHook`` writes a checkpoint with its file backend's
``put``; the local backend opens the target and writes into it, so a run
killed during the write leaves a truncated ``epoch_N.pth``. This backend,
registered under the new name ``'mmovl_atomic_local'`` (mmengine's own
``'local'`` backend is left as it is), writes through
:func:`mmovl.utils.fileio.atomic_write`: the old file or the new one, never
half of one. mmovl's default runtimes select it for checkpoints::

    default_hooks = dict(checkpoint=dict(
        type=CheckpointHook, backend_args=dict(backend='mmovl_atomic_local')))
"""
from pathlib import Path
from typing import Union

from mmengine.fileio import LocalBackend, register_backend

from .fileio import atomic_write

__all__ = ['AtomicLocalBackend', 'ATOMIC_LOCAL_BACKEND']

ATOMIC_LOCAL_BACKEND = 'mmovl_atomic_local'


class AtomicLocalBackend(LocalBackend):
    """mmengine's :class:`LocalBackend` with atomic ``put`` and
    ``put_text``."""

    def put(self, obj: bytes, filepath: Union[str, Path]) -> None:

        def write(tmp: str) -> None:
            with open(tmp, 'wb') as f:
                f.write(obj)

        atomic_write(str(filepath), write)

    def put_text(self,
                 obj: str,
                 filepath: Union[str, Path],
                 encoding: str = 'utf-8') -> None:

        def write(tmp: str) -> None:
            with open(tmp, 'w', encoding=encoding) as f:
                f.write(obj)

        atomic_write(str(filepath), write)


register_backend(ATOMIC_LOCAL_BACKEND, AtomicLocalBackend)
