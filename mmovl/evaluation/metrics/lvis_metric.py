# Copyright (c) mmovl contributors. All rights reserved.
"""mmdet's ``LVISMetric`` on numpy >= 1.24, with the fix scoped to it."""
import types
from contextlib import contextmanager
from typing import Dict, Iterator

import numpy as np
from mmdet.evaluation import LVISMetric
from mmdet.registry import METRICS


class _NumpyWithFloatAlias(types.ModuleType):
    """numpy, plus the ``np.float`` alias that numpy 1.24 removed."""
    float = float

    def __getattr__(self, name):
        return getattr(np, name)


@contextmanager
def lvis_numpy_compat() -> Iterator[None]:
    """Let ``lvis.eval`` run on numpy >= 1.24 inside a ``with`` block.

    The lvis-api release on PyPI (0.5.3) calls ``np.float`` in
    ``LVISEval.accumulate``. Inside the block, only the ``np`` name of the
    ``lvis.eval`` module is replaced, by numpy with that alias (numpy itself
    is left alone); the original is put back on exit. A no-op when lvis is
    not installed, or its ``np`` already has the alias (an older numpy, a
    fixed lvis, an enclosing block).

    Examples:
        >>> with lvis_numpy_compat():
        ...     lvis_eval.run()  # doctest: +SKIP
    """
    try:
        import lvis.eval as lvis_eval
    except ImportError:
        lvis_eval = None
    if lvis_eval is None or hasattr(lvis_eval.np, 'float'):
        yield
        return
    original = lvis_eval.np
    lvis_eval.np = _NumpyWithFloatAlias('numpy')
    try:
        yield
    finally:
        lvis_eval.np = original


@METRICS.register_module()
class CompatLVISMetric(LVISMetric):
    """mmdet's ``LVISMetric`` (APr / APc / APf / AP), runnable on numpy >=
    1.24 with the lvis-api release on PyPI.

    Arguments, results and prefix (``'lvis'``) are ``LVISMetric``'s; only
    :meth:`compute_metrics` runs inside :func:`lvis_numpy_compat`, so the
    ``lvis`` package is patched while this metric evaluates and never
    otherwise (mmovl's LVIS configs use this metric).
    """

    def compute_metrics(self, results: list) -> Dict[str, float]:
        with lvis_numpy_compat():
            return super().compute_metrics(results)
