# Copyright (c) mmovl contributors. All rights reserved.
"""Atomic file writes: a reader (or a resumed run) sees the old file or the
new one, never half of one.

Every file mmovl writes for later use (annotations, caches, shards,
converted weights, pictures) goes through :func:`atomic_write`: the data is
written to a temporary file in the target's folder (``os.replace`` is atomic
only within one file system), flushed to disk and moved onto the target.
Temporary names start with :data:`TMP_PREFIX`, so a folder can be swept of
what a killed writer left.
"""
import os
import os.path as osp
import uuid
from typing import Any, Callable

__all__ = ['TMP_PREFIX', 'atomic_write', 'atomic_write_text']

TMP_PREFIX = '.tmp-'


def atomic_write(path: str, write: Callable[[str], Any]) -> str:
    """Write ``path`` through ``write(tmp)``, all or nothing.

    ``write`` gets the path of a new temporary file beside ``path`` whose
    name ends with ``path``'s own name, extension included (writers such as
    ``mmcv.imwrite`` pick the format from it), and writes it however it
    likes. The file then gets the permissions of any new file (the umask's,
    not ``mkstemp``'s 0600), is synced to disk and moved onto ``path``. If
    ``write`` raises, the temporary file is removed and ``path`` is left as
    it was. Missing folders are created.

    Args:
        path (str): The file to write.
        write (Callable[[str], Any]): Writes the temporary file it is given.

    Returns:
        str: ``path``.

    Examples:
        >>> import json, tempfile
        >>> out = osp.join(tempfile.mkdtemp(), 'a.json')
        >>> def dump(tmp):
        ...     with open(tmp, 'w') as f:
        ...         json.dump({'a': 1}, f)
        >>> atomic_write(out, dump) == out
        True
    """
    folder, name = osp.split(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = osp.join(folder,
                   f'{TMP_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}-{name}')
    try:
        write(tmp)
        if not osp.isfile(tmp):
            raise RuntimeError(f'The writer of {path} wrote no file at {tmp}.')
        fd = os.open(tmp, os.O_RDWR)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    finally:
        if osp.lexists(tmp):
            os.remove(tmp)
    return path


def atomic_write_text(path: str, text: str) -> str:
    """Write ``text`` to ``path`` (UTF-8, ``\\n`` line endings) atomically.

    Args:
        path (str): The text file.
        text (str): Its whole content.

    Returns:
        str: ``path``.
    """

    def write(tmp):
        with open(tmp, 'w', encoding='utf-8', newline='\n') as f:
            f.write(text)

    return atomic_write(path, write)
