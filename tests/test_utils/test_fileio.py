# Copyright (c) mmovl contributors. All rights reserved.
import json
import os
import stat

import numpy as np
import pytest

from mmovl.utils import (TMP_PREFIX, atomic_write, atomic_write_json,
                         atomic_write_lines, atomic_write_text)


def _tmp_files(folder):
    return [n for n in os.listdir(folder) if n.startswith(TMP_PREFIX)]


def test_writes_through_a_temporary_file_beside_the_target(tmp_path):
    target = tmp_path / 'new' / 'folder' / 'picture.png'
    seen = []

    def write(tmp):
        seen.append(tmp)
        assert not target.exists()  # nothing at the target while writing
        with open(tmp, 'wb') as f:
            f.write(b'data')

    assert atomic_write(str(target), write) == str(target)
    assert target.read_bytes() == b'data'
    # same folder (os.replace is atomic only within one file system), the
    # extension kept (encoders pick the format from it), a sweepable name
    tmp = os.path.basename(seen[0])
    assert os.path.dirname(seen[0]) == str(target.parent)
    assert tmp.startswith(TMP_PREFIX) and tmp.endswith('picture.png')
    assert _tmp_files(target.parent) == []


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / 'index.json'
    target.write_text('old')

    def half_then_fail(tmp):
        with open(tmp, 'w') as f:
            f.write('half of the new')
        raise KeyboardInterrupt  # a user's Ctrl-C, not only an Exception

    with pytest.raises(KeyboardInterrupt):
        atomic_write(str(target), half_then_fail)
    assert target.read_text() == 'old'
    assert _tmp_files(tmp_path) == []


def test_a_writer_that_writes_nothing_is_an_error(tmp_path):
    target = tmp_path / 'a.npz'
    with pytest.raises(RuntimeError, match='a.npz'):
        atomic_write(str(target), lambda tmp: None)
    assert not target.exists() and _tmp_files(tmp_path) == []


def test_new_files_get_the_umask_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        path = atomic_write_text(str(tmp_path / 'labels.txt'), 'a\nb\n')
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644


def test_text_and_writers_that_take_a_path(tmp_path):
    text = 'red circle\nbleu ciel \u00e9\n'
    path = atomic_write_text(str(tmp_path / 'labels.txt'), text)
    with open(path, 'rb') as f:
        assert f.read() == text.encode('utf-8')
    # np.save adds '.npy' unless the name already ends with it: the kept
    # extension means the file lands where it was asked for
    arr = np.arange(6).reshape(2, 3)
    npy = atomic_write(str(tmp_path / 'x.npy'), lambda tmp: np.save(tmp, arr))
    np.testing.assert_array_equal(np.load(npy), arr)
    assert sorted(os.listdir(tmp_path)) == ['labels.txt', 'x.npy']


def test_lines_and_json_take_the_path_first(tmp_path):
    lines = atomic_write_lines(str(tmp_path / 'a.txt'), ['x', 2])
    crlf = atomic_write_lines(
        str(tmp_path / 'b.txt'), ['x', 'y'], newline='\r\n')
    empty = atomic_write_lines(str(tmp_path / 'c.txt'), [])
    with open(lines, 'rb') as f:
        assert f.read() == b'x\n2\n'
    with open(crlf, 'rb') as f:
        assert f.read() == b'x\r\ny\r\n'
    with open(empty, 'rb') as f:
        assert f.read() == b''
    obj = {'a': [1, 2], 'b': 'c'}
    loose = atomic_write_json(str(tmp_path / 'loose.json'), obj)
    compact = atomic_write_json(str(tmp_path / 'compact.json'), obj,
                                compact=True)
    indented = atomic_write_json(str(tmp_path / 'ind.json'), obj, indent=1)
    with open(loose) as f:
        assert f.read() == '{"a": [1, 2], "b": "c"}'
    with open(compact) as f:
        assert f.read() == '{"a":[1,2],"b":"c"}'
    with open(indented) as f:
        assert f.read() == json.dumps(obj, indent=1)
    assert not _tmp_files(tmp_path)
