# Copyright (c) mmovl contributors. All rights reserved.
import copy
import os.path as osp

import open_clip
import pytest
import torch
from mmengine.registry import DefaultScope
from safetensors.torch import save_file

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


@pytest.fixture(scope='session')
def random_toy_teacher(tmp_path_factory):
    """A randomly initialised 'mmovl-toy-vit' saved as open_clip weights
    (no download, no shipped file; read-only)."""
    path = str(tmp_path_factory.mktemp('teacher') / 'toy_clip.safetensors')
    torch.manual_seed(0)
    clip = open_clip.create_model('mmovl-toy-vit')
    save_file({k: v.contiguous() for k, v in clip.state_dict().items()},
              path)
    return path


@pytest.fixture(scope='module')
def one_thread():
    """One torch thread for a module of tiny models: on a machine shared
    with other jobs, torch's extra threads spin-wait and make each op many
    times slower. Use with ``pytestmark = pytest.mark.usefixtures(
    'one_thread')``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope='module', autouse=True)
def keep_default_scope():
    """Give every test module the default scope it started with.

    Building a detector (mmdet's inferencer, ``init_default_scope('mmdet')``)
    makes mmdet the process's default scope, where mmpretrain's registry
    names (``'MKT'``, ``'ClsDataPreprocessor'``) are not found: without this,
    a classification test fails or passes depending on which modules ran
    before it. Restored the way mmengine's own
    ``DefaultScope.overwrite_default_scope`` restores it.
    """
    saved = copy.copy(DefaultScope._instance_dict)
    yield
    DefaultScope._instance_dict = saved
