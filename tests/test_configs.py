# Copyright (c) mmovl contributors. All rights reserved.
"""Every shipped config parses and builds its model; configs inherit."""
import glob
import os
import os.path as osp
import subprocess
import sys

import pytest
from mmengine.config import Config
from mmengine.registry import DefaultScope, init_default_scope

import mmovl  # noqa: F401

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG_ROOT = osp.join(REPO, 'mmovl', 'configs')
CONFIGS = sorted(
    p for p in glob.glob(osp.join(CONFIG_ROOT, '**', '*.py'), recursive=True)
    if '_base_' not in p.split(osp.sep))


def test_top_level_configs_is_the_package_folder():
    assert osp.realpath(osp.join(REPO, 'configs')) == osp.realpath(
        CONFIG_ROOT)


def test_mim_finds_each_config_once_and_the_tools():
    """``mim train mmovl NAME`` looks ``NAME`` up by file name through the
    whole installed package, following links, refuses a name found twice,
    and runs ``<package>/.mim/tools/train.py``: the same lookup here."""
    pkg_root = osp.dirname(osp.abspath(mmovl.__file__))
    found = {}
    for folder, _, files in os.walk(pkg_root, followlinks=True):
        for name in files:
            found.setdefault(name, []).append(osp.join(folder, name))
    twice = {osp.basename(p): found[osp.basename(p)] for p in CONFIGS
             if len(found.get(osp.basename(p), [])) != 1}
    assert not twice, f'mim would refuse these config names: {twice}'
    for tool in ('train.py', 'test.py'):
        assert osp.isfile(osp.join(pkg_root, '.mim', 'tools', tool)), (
            f'{tool} is missing from mmovl/.mim/tools (pip install -e .)')


def _random_weights_for_missing_checkpoints(node, tmp_dir, made):
    """Configs name local CLIP weights that tests cannot have; point each
    missing one at random weights of the same open_clip architecture, so
    the real loading path still runs."""
    if isinstance(node, dict):
        ckpt, name = node.get('checkpoint'), node.get('model_name')
        if isinstance(ckpt, str) and name and not osp.isfile(ckpt):
            if name not in made:
                import open_clip
                from safetensors.torch import save_file
                clip = open_clip.create_model(name)
                made[name] = osp.join(tmp_dir, f'{name}.safetensors')
                save_file({k: v.contiguous()
                           for k, v in clip.state_dict().items()},
                          made[name])
            node['checkpoint'] = made[name]
        for value in node.values():
            _random_weights_for_missing_checkpoints(value, tmp_dir, made)
    elif isinstance(node, (list, tuple)):
        for value in node:
            _random_weights_for_missing_checkpoints(value, tmp_dir, made)


@pytest.mark.parametrize('path', CONFIGS,
                         ids=lambda p: osp.relpath(p, CONFIG_ROOT))
def test_config_builds_model(path, tmp_path):
    cfg = Config.fromfile(path)
    _random_weights_for_missing_checkpoints(cfg.model, str(tmp_path), {})
    for key in ('model', 'train_dataloader', 'optim_wrapper'):
        assert key in cfg, f'{path} has no {key}'
    from mmengine.registry import MODELS
    scope = cfg.get('default_scope', None)
    if scope:
        init_default_scope(scope)
    model = MODELS.build(cfg.model)
    assert sum(p.numel() for p in model.parameters()) > 0
    DefaultScope._instance_dict.clear()


def test_external_config_inherits_and_overrides(tmp_path):
    path = tmp_path / 'my_project_config.py'
    path.write_text(
        'from mmengine.config import read_base\n'
        'with read_base():\n'
        '    from mmovl.configs.baseline.vit_tiny_p8_linear_10e_toy '
        'import *\n'
        'train_dataloader.update(batch_size=7)\n')
    cfg = Config.fromfile(str(path))
    base = Config.fromfile(
        osp.join(CONFIG_ROOT, 'baseline', 'vit_tiny_p8_linear_10e_toy.py'))
    assert cfg.train_dataloader.batch_size == 7
    assert base.train_dataloader.batch_size != 7
    # everything else is inherited unchanged
    assert cfg.model == base.model
    assert cfg.val_dataloader == base.val_dataloader
    assert cfg.train_cfg == base.train_cfg


def test_custom_imports_register_in_a_fresh_process(tmp_path):
    """One line in a user's dict-style config brings mmovl's parts in."""
    path = tmp_path / 'user_cfg.py'
    path.write_text("custom_imports = dict(imports=['mmovl'], "
                    'allow_failed_imports=False)\n')
    code = (
        'import sys\n'
        'from mmengine.config import Config\n'
        'import mmpretrain.registry as P, mmdet.registry as D\n'
        "assert 'mmovl' not in sys.modules\n"
        f'Config.fromfile({str(path)!r})\n'
        "assert P.DATASETS.get('CocoMultiLabelDataset') is not None\n"
        "assert P.MODELS.get('CLIPTeacher') is not None\n"
        "assert D.MODELS.get('CLIPTeacher') is not None\n"
        "assert P.METRICS.get('ZSLMultiLabelMetric') is not None\n")
    proc = subprocess.run([sys.executable, '-c', code], cwd=str(tmp_path),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
