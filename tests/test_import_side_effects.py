# Copyright (c) mmovl contributors. All rights reserved.
"""``import mmovl`` (every subpackage, every component registered) changes
nothing outside mmovl but the registries: mmengine's checkpoint loading, the
root logger and lvis are as the host frameworks left them, also after an
open_clip model was built through the teacher and the backbone. Each runs in
a fresh interpreter, so no other test's imports interfere."""
import os.path as osp
import subprocess
import sys

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))

CHECK = r'''
import logging
import sys
import tempfile

# The host frameworks first: only what mmovl adds is looked at.
import mmdet.evaluation  # noqa: F401
import mmpretrain  # noqa: F401
import numpy as np
import open_clip
import torch
from mmengine.runner.checkpoint import CheckpointLoader, load_from_local

try:
    import lvis.eval as lvis_eval
except ImportError:
    lvis_eval = None


def state():
    root = logging.getLogger()
    return dict(
        schemes=dict(CheckpointLoader._schemes),
        root_filters=list(root.filters),
        root_handlers=list(root.handlers),
        root_level=root.level,
        lvis_np=lvis_eval.np if lvis_eval is not None else None,
        np_float=hasattr(np, 'float'))


before = state()
assert before['schemes'][''] is load_from_local

import mmovl  # noqa: E402,F401
import mmovl.apis  # noqa: E402,F401
import mmovl.datasets  # noqa: E402,F401
import mmovl.engine  # noqa: E402,F401
import mmovl.evaluation  # noqa: E402,F401
import mmovl.models  # noqa: E402,F401
import mmovl.utils  # noqa: E402,F401

after = state()
for key in before:
    assert after[key] == before[key], (key, before[key], after[key])
assert not mmovl.utils.safe_checkpoint_loading_enabled()

# Building open_clip models (which quiets open_clip's warning on the root
# logger while it creates one) leaves the root logger as it was.
from mmpretrain.registry import MODELS  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

clip = open_clip.create_model('mmovl-toy-vit')
path = tempfile.mktemp(suffix='.safetensors')
save_file({k: v.contiguous() for k, v in clip.state_dict().items()}, path)
MODELS.build(dict(type='CLIPTeacher', model_name='mmovl-toy-vit',
                  checkpoint=path))
MODELS.build(dict(type='OpenCLIPViT', model_name='mmovl-toy-vit',
                  checkpoint=path))
try:  # a failed build too
    MODELS.build(dict(type='CLIPTeacher', model_name='ViT-B-32',
                      checkpoint=path))
except ValueError:
    pass
else:
    raise AssertionError('toy weights fitted ViT-B-32')
after = state()
for key in before:
    assert after[key] == before[key], (key, before[key], after[key])
print('ok', lvis_eval is not None)
'''


def test_import_mmovl_has_no_side_effects():
    proc = subprocess.run([sys.executable, '-c', CHECK], cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert proc.stdout.split()[-2] == 'ok', proc.stdout[-2000:]
