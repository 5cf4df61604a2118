# Copyright (c) mmovl contributors. All rights reserved.
"""Progress of long loops: a bar on a terminal, a few lines in a log.

mmengine's ``ProgressBar`` redraws its line with a carriage return at every
step, which a log file or a pipe keeps as thousands of lines. :class:`Progress`
and :func:`track` draw that bar only when the stream is a terminal; anywhere
else they write a line at each quarter of the work and a final summary::

    toy world: 25% (1400/5600), 3.2 s
    toy world: 50% (2800/5600), 6.4 s
    toy world: 75% (4200/5600), 9.6 s
    toy world: 100% (5600/5600) in 12.8 s
"""
import sys
import time
from contextlib import contextmanager
from typing import Callable, Iterable, Iterator, Optional, TextIO, TypeVar

from mmengine.utils import ProgressBar

__all__ = ['Progress', 'progress_factory', 'track']

T = TypeVar('T')


def _is_terminal(file) -> bool:
    isatty = getattr(file, 'isatty', None)
    try:
        return bool(isatty is not None and isatty())
    except (OSError, ValueError):  # e.g. a closed stream
        return False


class Progress:
    """Progress of ``total`` steps, written to ``file``.

    On a terminal: mmengine's ``ProgressBar``, ended by a newline at
    :meth:`close`. Elsewhere: a line ``desc: 25% (n/total), 3.2 s`` each
    time another ``1/steps`` of the total is done, and at the end (the last
    step, or :meth:`close` if the total is not reached or not known) one
    summary line, ``desc: 100% (total/total) in 12.8 s``; so at most
    ``steps`` lines, whatever the total. Nothing is written if no step was
    done (e.g. the work was already there).

    Args:
        total (int, optional): The steps expected; 0 or None if not known
            (then only the summary is written).
        desc (str): What is being done; it starts every line. Defaults to
            ``'progress'``.
        file (TextIO, optional): The stream. Defaults to None
            (``sys.stdout`` at construction, so that a redirection of
            ``sys.stdout`` is followed).
        steps (int): Lines in a log: one at each ``1/steps`` of the total,
            the last being the summary. Defaults to 4.
        terminal (bool, optional): Draw the bar (True) or write lines
            (False); None asks ``file.isatty()``. Defaults to None.

    Examples:
        >>> progress = Progress(len(items), 'writing')  # doctest: +SKIP
        >>> for item in items:  # doctest: +SKIP
        ...     write(item)
        ...     progress.update()
        >>> progress.close()  # doctest: +SKIP
    """

    def __init__(self,
                 total: Optional[int],
                 desc: str = 'progress',
                 file: Optional[TextIO] = None,
                 steps: int = 4,
                 terminal: Optional[bool] = None) -> None:
        self.total = max(int(total or 0), 0)
        self.desc = desc
        self.file = sys.stdout if file is None else file
        self.steps = max(int(steps), 1)
        self.terminal = _is_terminal(self.file) if terminal is None \
            else bool(terminal)
        self.count = 0
        self.closed = False
        self._written = 0  # quarters (1/steps) written so far
        self._start = time.perf_counter()
        self._bar = ProgressBar(self.total, file=self.file) \
            if self.terminal else None

    @property
    def elapsed(self) -> float:
        """Seconds since the start."""
        return time.perf_counter() - self._start

    def _write(self, line: str) -> None:
        self.file.write(line + '\n')
        self.file.flush()

    def update(self, n: int = 1) -> None:
        """Advance by ``n`` steps (e.g. items, lines or bytes)."""
        if n <= 0 or self.closed:
            return
        self.count += n
        if self._bar is not None:
            self._bar.update(n)
            return
        if not self.total:
            return
        if self.count >= self.total:
            self.close()
            return
        reached = self.count * self.steps // self.total
        if reached > self._written:
            self._written = reached
            self._write(f'{self.desc}: {100 * self.count // self.total}% '
                        f'({self.count}/{self.total}), {self.elapsed:.1f} s')

    def close(self) -> None:
        """End the bar's line, or write the summary line (if a step was
        done); once."""
        if self.closed:
            return
        self.closed = True
        if self._bar is not None:
            self.file.write('\n')
            self.file.flush()
        elif not self.count:
            return
        elif self.total:
            self._write(f'{self.desc}: {100 * self.count // self.total}% '
                        f'({self.count}/{self.total}) in {self.elapsed:.1f} s')
        else:
            self._write(f'{self.desc}: {self.count} in {self.elapsed:.1f} s')

    def __enter__(self) -> 'Progress':
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def track(iterable: Iterable[T],
          total: Optional[int] = None,
          desc: str = 'progress',
          file: Optional[TextIO] = None,
          steps: int = 4) -> Iterator[T]:
    """Yield the items of ``iterable``, showing the progress as
    :class:`Progress` does (a bar on a terminal, a few lines elsewhere).

    Args:
        iterable (Iterable): The items.
        total (int, optional): How many; None takes ``len(iterable)`` where
            it has one (else only the summary line is written).
        desc (str): What is being done. Defaults to ``'progress'``.
        file (TextIO, optional): Defaults to None (``sys.stdout``).
        steps (int): See :class:`Progress`. Defaults to 4.

    Examples:
        >>> for path in track(paths, desc='images'):  # doctest: +SKIP
        ...     convert(path)
    """
    if total is None:
        total = len(iterable) if hasattr(iterable, '__len__') else None
    progress = Progress(total, desc, file, steps)
    for item in iterable:
        yield item
        progress.update()
    progress.close()


@contextmanager
def progress_factory(
    desc: str,
    file: Optional[TextIO] = None,
    steps: int = 4,
) -> Iterator[Callable[[int], Callable[[int], None]]]:
    """A ``progress(total)`` callback for readers that learn their total
    themselves and advance by amounts (``update(n)``), e.g. mmovl's
    NUS-WIDE and Open Images readers; each call starts a :class:`Progress`,
    closed when the block ends.

    Examples:
        >>> with progress_factory('labels.csv (bytes)') as progress:
        ...     labels = read_image_labels(path, progress=progress)
        ...     # doctest: +SKIP
    """
    started = []

    def start(total: int) -> Callable[[int], None]:
        started.append(Progress(total, desc, file, steps))
        return started[-1].update

    try:
        yield start
    finally:
        for progress in started:
            progress.close()
