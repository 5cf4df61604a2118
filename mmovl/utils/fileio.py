# Copyright (c) mmovl contributors. All rights reserved.
"""Atomic file writes: a reader (or a resumed run) sees the old file or the
new one, never half of one. And a safe reader of the JSON files users hand
in (annotations), which never runs code that a file holds.

Every file mmovl writes for later use (annotations, caches, shards,
converted weights, pictures) goes through :func:`atomic_write` (or its
text, lines and JSON forms, which all take ``(path, data)``): the data is
written to a temporary file in the target's folder (``os.replace`` is atomic
only within one file system), flushed to disk and moved onto the target.
Temporary names start with :data:`TMP_PREFIX`, so a folder can be swept of
what a killed writer left.
"""
import json
import os
import os.path as osp
import uuid
from typing import Any, Callable, Iterable, Optional

from mmengine.fileio import get_text

__all__ = [
    'TMP_PREFIX', 'atomic_write', 'atomic_write_text', 'atomic_write_lines',
    'atomic_write_json', 'load_json'
]

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


def atomic_write_lines(path: str,
                       lines: Iterable[Any],
                       newline: str = '\n') -> str:
    """Write one line per item (``str(item)`` then ``newline``, UTF-8)
    atomically.

    Args:
        path (str): The text file.
        lines (Iterable): The lines, without line endings.
        newline (str): What ends every line, written as is (``'\\r\\n'``
            for Windows-style files). Defaults to ``'\\n'``.

    Returns:
        str: ``path``.

    Examples:
        >>> import tempfile
        >>> out = osp.join(tempfile.mkdtemp(), 'labels.txt')
        >>> with open(atomic_write_lines(out, ['cat', 'dog']), 'rb') as f:
        ...     f.read()
        b'cat\\ndog\\n'
    """
    return atomic_write_text(path,
                             ''.join(f'{line}{newline}' for line in lines))


def atomic_write_json(path: str,
                      data: Any,
                      compact: bool = False,
                      **dumps_kwargs) -> str:
    """Write ``data`` as JSON (UTF-8) atomically.

    Args:
        path (str): The JSON file.
        data: What ``json.dumps`` takes.
        compact (bool): No spaces after separators (``(',', ':')``), for
            large annotation files. Defaults to False (``json.dumps``'s own
            separators).
        **dumps_kwargs: Passed to ``json.dumps`` (``indent``, ``default``).

    Returns:
        str: ``path``.
    """
    if compact:
        dumps_kwargs.setdefault('separators', (',', ':'))
    return atomic_write_text(path, json.dumps(data, **dumps_kwargs))


def load_json(path: str,
              what: str = 'annotation file',
              backend_args: Optional[dict] = None) -> Any:
    """Read a JSON file that a user supplies, and nothing else.

    ``mmengine.load`` picks its parser from the file's extension, and two of
    them run code a file holds: ``pickle`` for ``.pkl`` and YAML's unsafe
    loader for ``.yaml``. A data file must never execute anything, so this
    reads JSON only (UTF-8, a BOM allowed) and refuses any other extension.

    Args:
        path (str): The file (a local path or one of mmengine's backends).
        what (str): What the file is, for the messages.
            Defaults to ``'annotation file'``.
        backend_args (dict, optional): mmengine file backend arguments.

    Returns:
        The parsed JSON value.

    Raises:
        ValueError: For a file that is not ``.json`` or not valid JSON, with
            the path (and the line and column of a syntax error).
        FileNotFoundError: For a local path that does not exist.
    """
    path = str(path)
    if not path.lower().endswith('.json'):
        raise ValueError(
            f'{what} {path}: mmovl reads annotations from JSON files only '
            '(a .pkl or .yaml file can run code when loaded); convert it to '
            'JSON')
    if '://' not in path and not osp.isfile(path):
        raise FileNotFoundError(f'{what} not found: {path}')
    try:
        text = get_text(path, encoding='utf-8-sig', backend_args=backend_args)
    except UnicodeDecodeError as e:
        raise ValueError(f'{what} {path} is not UTF-8 text: {e}') from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f'{what} {path} is not valid JSON: {e.msg} at line '
                         f'{e.lineno}, column {e.colno}') from None
