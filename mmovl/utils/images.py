# Copyright (c) mmovl contributors. All rights reserved.
"""Reading a user's image with errors and warnings that name it.

OpenCV decodes a damaged JPEG without an error: libjpeg prints "Corrupt
JPEG data" on the process's stderr and fills the damaged blocks with grey.
:func:`jpeg_damage` finds damage in the file's marker structure, and
:func:`read_image` also collects libjpeg's own messages while it decodes
(file descriptor 2 is pointed at a temporary file for the duration of the
decode and restored; other text written there meanwhile is passed on), so
that the warning names the path.
"""
import os
import os.path as osp
import sys
import tempfile
import warnings
from typing import Callable, Optional, Tuple, Union

import mmcv
import numpy as np

__all__ = ['jpeg_damage', 'read_image', 'DamagedImageWarning']

# Markers that may stand inside or between the scans of a JPEG: restart
# markers, the end of image, and (progressive files) tables, scans and
# comments between scans.
_RST = frozenset(range(0xD0, 0xD8))
_SEGMENTS_BETWEEN_SCANS = frozenset(
    {0xC4, 0xCC, 0xDA, 0xDB, 0xDD, 0xFE} | set(range(0xE0, 0xF0)))


class DamagedImageWarning(UserWarning):
    """An image decoded, but its file is damaged (the picture may hold grey
    or shifted blocks)."""


def jpeg_damage(data: bytes) -> Optional[str]:
    """What is wrong with a JPEG's marker structure, or None.

    Checks the start and end markers and that every 0xFF byte in the
    compressed data is stuffed (0xFF00), a fill byte, a restart marker or
    a segment between scans, as the JPEG standard (T.81, B.1.1.5) requires.
    Flipped or overwritten bytes in the compressed data nearly always break
    that rule; a file cut short loses its end marker.

    Args:
        data (bytes): The file's bytes.

    Returns:
        str | None: A description of the first damage found, or None.
    """
    if not data.startswith(b'\xff\xd8'):
        return 'it does not start with the JPEG start-of-image marker'
    if not data.rstrip(b'\x00').endswith(b'\xff\xd9'):
        return 'it does not end with the end-of-image marker (cut short?)'
    sos = data.find(b'\xff\xda')
    if sos < 0:
        return 'it holds no scan (start-of-scan marker)'
    end = len(data)
    # Skip the SOS header, then walk the compressed data.
    i = sos + 2 + int.from_bytes(data[sos + 2:sos + 4], 'big')
    while True:
        i = data.find(b'\xff', i)
        if i < 0 or i + 1 >= end:
            return None
        marker = data[i + 1]
        if marker == 0x00 or marker in _RST:
            i += 2
        elif marker == 0xFF:  # fill byte
            i += 1
        elif marker == 0xD9:
            tail = data[i + 2:].rstrip(b'\x00')
            return None if not tail else (
                f'{len(tail)} bytes follow the end-of-image marker at byte '
                f'{i}')
        elif marker in _SEGMENTS_BETWEEN_SCANS:
            if i + 4 > end:
                return f'a segment header is cut at byte {i}'
            i += 2 + int.from_bytes(data[i + 2:i + 4], 'big')
        else:
            return (f'an unexpected marker 0xFF{marker:02X} stands in the '
                    f'compressed data at byte {i}')


# The openings of libjpeg's warnings about damaged data (jerror.h).
_LIBJPEG_DAMAGE = ('Corrupt JPEG data', 'Premature end of JPEG file',
                   'Invalid JPEG file structure', 'Warning: unknown JFIF')


def _decode_collecting_stderr(decode: Callable[[], np.ndarray]
                              ) -> Tuple[Optional[np.ndarray], str]:
    """Run ``decode`` with file descriptor 2 in a temporary file; return its
    result and what was written there (text not from libjpeg's damage
    warnings is written on to the real stderr)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            result = decode()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        tmp.seek(0)
        text = tmp.read().decode('utf-8', errors='replace')
    other = ''.join(
        line for line in text.splitlines(keepends=True)
        if not line.startswith(_LIBJPEG_DAMAGE))
    if other:
        sys.stderr.write(other)
    return result, text


def read_image(input_: Union[str, np.ndarray], index: int) -> np.ndarray:
    """One input image as a BGR uint8 array, or a clear error.

    A missing, empty or undecodable file and an empty or misshapen array
    raise an error naming the path (or the input's position); a JPEG that
    decodes but is damaged gives a :class:`DamagedImageWarning` naming the
    path.

    Args:
        input_ (str | np.ndarray): An image path or a BGR (H, W, 3) array.
        index (int): Its position among the inputs, for the error message.

    Returns:
        np.ndarray: The BGR image.
    """
    if isinstance(input_, str):
        if not osp.isfile(input_):
            raise FileNotFoundError(f'Image not found: {input_}')
        with open(input_, 'rb') as f:
            data = f.read()
        if not data:
            raise ValueError(f'Cannot read image {input_}: the file is '
                             'empty (0 bytes).')
        is_jpeg = data.startswith(b'\xff\xd8')
        if is_jpeg:
            img, messages = _decode_collecting_stderr(
                lambda: mmcv.imfrombytes(data))
        else:
            img, messages = mmcv.imfrombytes(data), ''
        if img is None or img.size == 0:
            raise ValueError(f'Cannot read image {input_}: not an image '
                             'file, or a corrupt one.')
        if is_jpeg:
            reported = [
                line.strip() for line in messages.splitlines()
                if line.startswith(_LIBJPEG_DAMAGE)
            ]
            damage = jpeg_damage(data) or '; '.join(reported)
            if damage:
                warnings.warn(
                    f'{input_}: damaged JPEG ({damage}); it decoded, but '
                    'parts of the picture may be grey or shifted.',
                    DamagedImageWarning)
        return img
    if isinstance(input_, np.ndarray):
        if input_.ndim != 3 or input_.shape[2] != 3:
            raise ValueError(f'Input {index}: expected a BGR image array '
                             f'(H, W, 3), got shape {input_.shape}.')
        if input_.shape[0] == 0 or input_.shape[1] == 0:
            raise ValueError(f'Input {index}: the image array is empty '
                             f'(shape {input_.shape}).')
        return input_
    raise TypeError(f'Input {index}: expected an image path or array, '
                    f'got {type(input_).__name__}.')
