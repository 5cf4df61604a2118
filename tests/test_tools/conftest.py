# Copyright (c) mmovl contributors. All rights reserved.
"""Helpers shared by the end-to-end tests of tools/."""
import os
import os.path as osp
import subprocess
import sys

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _run_python(args):
    proc = subprocess.run(
        [sys.executable] + args, cwd=REPO, capture_output=True, text=True,
        timeout=600, env={**os.environ, 'PYTHONPATH': REPO})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc


@pytest.fixture
def run_python():
    """Run a repository script with this interpreter; fail with its output
    if it exits non-zero."""
    return _run_python
