# Copyright (c) mmovl contributors. All rights reserved.
import io
import sys

import pytest

from mmovl.utils.progress import Progress, progress_factory, track


class _Terminal(io.StringIO):

    def isatty(self):
        return True


@pytest.mark.parametrize('total', [1, 3, 4, 7, 100, 10000])
def test_a_log_gets_a_few_lines_and_the_summary(total):
    out = io.StringIO()
    items = list(track(range(total), desc='images', file=out))
    assert items == list(range(total))
    text = out.getvalue()
    assert '\r' not in text
    lines = text.splitlines()
    assert 1 <= len(lines) <= 4
    assert all(line.startswith('images: ') for line in lines)
    assert lines[-1].startswith(f'images: 100% ({total}/{total}) in ')
    percents = [int(line.split()[1].rstrip('%')) for line in lines]
    assert percents == sorted(set(percents))


def test_quarters_of_a_long_loop():
    out = io.StringIO()
    for _ in track(range(1000), desc='x', file=out):
        pass
    lines = out.getvalue().splitlines()
    assert [line.split(' (')[0] for line in lines] == [
        'x: 25%', 'x: 50%', 'x: 75%', 'x: 100%'
    ]
    assert lines[0].startswith('x: 25% (250/1000), ')


def test_updates_by_amounts_and_close_once():
    out = io.StringIO()
    with Progress(1000, 'bytes', file=out) as progress:
        progress.update(0)  # nothing
        progress.update(600)  # past two quarters at once: one line
        progress.update(500)  # past the total: the summary
        progress.update(10)  # after the end: nothing
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith('bytes: 60% (600/1000), ')
    assert lines[1].startswith('bytes: 110% (1100/1000) in ')


def test_stopped_early_or_without_a_total():
    out = io.StringIO()
    with Progress(100, 'a', file=out) as progress:
        progress.update(10)
    lines = out.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith('a: 10% (10/100) in ')
    out = io.StringIO()
    assert list(track(iter('xyz'), desc='b', file=out)) == list('xyz')
    lines = out.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith('b: 3 in ')
    out = io.StringIO()
    with Progress(100, 'nothing done', file=out):
        pass
    assert out.getvalue() == ''


def test_a_terminal_gets_mmengines_bar_ended_by_a_newline():
    out = _Terminal()
    for _ in track(range(5), desc='images', file=out):
        pass
    text = out.getvalue()
    assert text.count('\r') == 5 and '5/5' in text
    assert text.endswith('\n') and text.count('\n') == 1


def test_the_default_stream_is_stdout_at_construction(monkeypatch):
    out = io.StringIO()
    monkeypatch.setattr(sys, 'stdout', out)
    for _ in track(range(3), desc='now'):
        pass
    assert out.getvalue().splitlines()[-1].startswith('now: 100% (3/3)')


def test_progress_factory_for_readers_that_know_their_total():
    out = io.StringIO()
    with progress_factory('rows', file=out) as progress:
        step = progress(10)
        step(6)  # past two quarters at once: one line
        # stopped before the end: the block closes it with the summary
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith('rows: 60% (6/10), ')
    assert lines[1].startswith('rows: 60% (6/10) in ')
