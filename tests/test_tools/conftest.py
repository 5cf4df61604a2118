# Copyright (c) mmovl contributors. All rights reserved.
"""Helpers shared by the end-to-end tests of tools/."""
import os
import os.path as osp
import subprocess
import sys

import open_clip
import pytest
import torch
from safetensors.torch import save_file

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


@pytest.fixture
def random_toy_teacher(tmp_path):
    """A randomly initialised 'mmovl-toy-vit' saved as open_clip weights."""
    path = str(tmp_path / 'toy_clip.safetensors')
    torch.manual_seed(0)
    clip = open_clip.create_model('mmovl-toy-vit')
    save_file({k: v.contiguous() for k, v in clip.state_dict().items()},
              path)
    return path
