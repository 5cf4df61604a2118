# Copyright (c) mmovl contributors. All rights reserved.
import os.path as osp

import pytest

from mmovl.datasets.toy_world import ToyWorldConfig, generate_toy_world

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))

# Small enough for unit tests; odd sizes so that distributed padding shows.
TINY_WORLD = ToyWorldConfig(num_train=48, num_train_lt=40, num_val=11)


@pytest.fixture(scope='session')
def tiny_world(tmp_path_factory):
    """A tiny toy world shared by the tests of one session (read-only)."""
    root = str(tmp_path_factory.mktemp('toy_world'))
    generate_toy_world(root, TINY_WORLD)
    return root
