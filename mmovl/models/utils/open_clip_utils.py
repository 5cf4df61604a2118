# Copyright (c) mmovl contributors. All rights reserved.
"""mmovl's one layer over open_clip.

Everything mmovl's models need from open_clip beyond ``create_model``,
``get_model_config`` and ``get_tokenizer`` goes through these functions, and
they use open_clip's public API only (checked against open_clip_torch 3.3.0,
the version ``tools/install.sh`` pins):

- :func:`register_open_clip_config`: a custom architecture from a dict,
  through ``open_clip.add_model_config`` (which reads JSON files);
- :func:`read_open_clip_state_dict` and :func:`load_open_clip_state_dict`:
  local weights (``.safetensors`` or a weights-only torch file), checked key
  by key and shape by shape (:func:`mmovl.utils.check_state_dict_fits`)
  before a strict load;
- :func:`quiet_open_clip_random_init`: no "initialized randomly" warning
  for a model whose weights are loaded right after;
- :func:`open_clip_vit_tokens`: the class and patch tokens of an open_clip
  ViT after ``ln_post``, through ``VisionTransformer.forward_intermediates``.

Importing this module registers mmovl's own architectures (the JSON files of
:data:`OPEN_CLIP_CONFIG_DIR`, e.g. ``'mmovl-toy-vit'``) in open_clip, as
``import mmovl`` registers its components.
"""
import json
import logging
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Dict, Iterator, Tuple

import open_clip
import torch
import torch.nn as nn

from mmovl.utils.checkpoint import check_state_dict_fits, safe_torch_load
from mmovl.utils.fileio import atomic_write_json

__all__ = [
    'OPEN_CLIP_CONFIG_DIR', 'register_open_clip_config',
    'read_open_clip_state_dict', 'load_open_clip_state_dict',
    'quiet_open_clip_random_init', 'open_clip_vit_tokens'
]

#: mmovl's open_clip architectures, one JSON file each (the file's stem is
#: the model name, e.g. ``'mmovl-toy-vit'``).
OPEN_CLIP_CONFIG_DIR = Path(__file__).parent / 'open_clip_configs'
# open_clip's public hook for new architectures: every JSON file in the
# folder becomes a model name.
open_clip.add_model_config(OPEN_CLIP_CONFIG_DIR)

_REQUIRED_CFG_KEYS = ('embed_dim', 'vision_cfg', 'text_cfg')


def register_open_clip_config(name: str, model_cfg: dict) -> None:
    """Register an architecture under ``name`` in open_clip.

    After this, ``open_clip.create_model(name)``, ``open_clip.get_tokenizer(
    name)`` and :class:`CLIPTeacher` build it like a built-in model.
    Registering the same config twice is a no-op; reusing a name for another
    config is an error, so a custom config never shadows e.g. ``'ViT-B-16'``.

    open_clip's public way in is ``open_clip.add_model_config(path)``, which
    reads JSON files (named ``<model name>.json``) into its table. So the
    config is written, atomically, as ``<name>.json`` in a private temporary
    folder, handed to ``add_model_config`` and the folder is removed: the
    entry stays in open_clip's table (its later rescans keep entries whose
    file is gone), and nothing is left on disk. This costs a rescan of
    open_clip's config folders (a few milliseconds) per new architecture.

    Args:
        name (str): The architecture name; it must be usable as a file name
            (no path separators).
        model_cfg (dict): A config in open_clip's JSON model-config format,
            with ``embed_dim``, ``vision_cfg`` and ``text_cfg``.

    Examples:
        >>> register_open_clip_config('my-tiny-vit', dict(
        ...     embed_dim=32,
        ...     vision_cfg=dict(image_size=32, layers=1, width=32,
        ...                     head_width=32, patch_size=16),
        ...     text_cfg=dict(context_length=16, vocab_size=49408, width=32,
        ...                   heads=1, layers=1)))
        >>> 'my-tiny-vit' in open_clip.list_models()
        True
    """
    missing = [k for k in _REQUIRED_CFG_KEYS if k not in model_cfg]
    if missing:
        raise ValueError(f'open_clip model config for {name!r} lacks '
                         f'{missing}; it needs {list(_REQUIRED_CFG_KEYS)}.')
    # The JSON round trip gives the config the form open_clip reads from its
    # files (lists, not tuples), so equal configs compare equal.
    cfg = json.loads(json.dumps(model_cfg))
    existing = open_clip.get_model_config(name)
    if existing is not None:
        if existing != cfg:
            raise ValueError(
                f'open_clip already has an architecture named {name!r} with '
                'a different config; give the custom config another name.')
        return
    file_name = f'{name}.json'
    if not name or Path(file_name).name != file_name or \
            Path(file_name).stem != name:
        raise ValueError(f'{name!r} cannot name an open_clip architecture: '
                         'open_clip names them after their JSON file.')
    with tempfile.TemporaryDirectory(prefix='mmovl-open-clip-') as folder:
        path = Path(folder) / file_name
        atomic_write_json(str(path), cfg)
        open_clip.add_model_config(path)
    if open_clip.get_model_config(name) != cfg:
        raise RuntimeError(f'open_clip did not register {name!r}.')


def read_open_clip_state_dict(path: str) -> Dict[str, torch.Tensor]:
    """Read CLIP weights from a .safetensors or (weights-only) torch file.

    Args:
        path (str): A ``.safetensors`` file, or a torch file of a state dict
            (raw, or under ``'state_dict'`` / ``'model'``), read with
            :func:`mmovl.utils.safe_torch_load`. A ``module.`` prefix (left
            by DataParallel) is removed.

    Returns:
        dict[str, torch.Tensor]: The state dict, on the CPU.
    """
    try:
        if path.endswith('.safetensors'):
            from safetensors.torch import load_file
            ckpt = load_file(path, device='cpu')
        else:
            # weights_only=True, plus the few types mmengine checkpoints hold.
            ckpt = safe_torch_load(path, map_location='cpu')
    except Exception as e:
        raise ValueError(
            f'Cannot read CLIP checkpoint {path} (a .safetensors file, or a '
            'torch file of tensors such as a saved model.state_dict(); '
            f'TorchScript archives are not supported): {e}') from e
    if isinstance(ckpt, dict):
        for wrapper in ('state_dict', 'model'):
            if isinstance(ckpt.get(wrapper), dict):
                ckpt = ckpt[wrapper]
                break
    if not (isinstance(ckpt, dict) and ckpt
            and all(isinstance(v, torch.Tensor) for v in ckpt.values())):
        raise ValueError(f'CLIP checkpoint {path} does not hold a state dict '
                         "of tensors (raw, or under 'state_dict'/'model').")
    prefix = 'module.'  # left by (Distributed)DataParallel
    return {
        k[len(prefix):] if k.startswith(prefix) else k: v
        for k, v in ckpt.items()
    }


def load_open_clip_state_dict(module: nn.Module,
                              state_dict: Dict[str, torch.Tensor], path: str,
                              model_name: str) -> None:
    """Load CLIP weights strictly into ``module`` (an open_clip model or one
    of its towers), or raise ValueError naming ``path`` and what differs.

    A 1-element ``logit_scale`` is first given the model's shape (it is
    stored as a scalar or a vector depending on the version).

    Args:
        module (nn.Module): The open_clip model or tower.
        state_dict (dict[str, torch.Tensor]): Its weights (edited in place
            for ``logit_scale``).
        path (str): Where they come from, for the message.
        model_name (str): The open_clip architecture, for the message.
    """
    expected = module.state_dict()
    logit_scale = state_dict.get('logit_scale')
    if logit_scale is not None and logit_scale.numel() == 1 and \
            'logit_scale' in expected:
        state_dict['logit_scale'] = logit_scale.reshape(
            expected['logit_scale'].shape)
    check_state_dict_fits(
        expected, state_dict,
        f'CLIP checkpoint {path} does not fit the open_clip architecture '
        f'{model_name!r}')
    module.load_state_dict(state_dict, strict=True)


@contextmanager
def quiet_open_clip_random_init() -> Iterator[None]:
    """Silence open_clip's 'initialized randomly' warning inside the block.

    For a model created empty whose weights are loaded right after, where
    the warning would be wrong. open_clip logs it through the root logger
    (``logging.warning``), so a filter is put on the root logger for the
    block only and removed on exit (also on an error); nothing else is
    filtered.

    Examples:
        >>> with quiet_open_clip_random_init():
        ...     clip = open_clip.create_model('mmovl-toy-vit')
    """

    def keep(record: logging.LogRecord) -> bool:
        return 'initialized randomly' not in record.getMessage()

    root = logging.getLogger()
    root.addFilter(keep)
    try:
        yield
    finally:
        root.removeFilter(keep)


def open_clip_vit_tokens(
        visual: nn.Module,
        images: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """The class token and the patch tokens of an open_clip ViT's last
    block, after ``ln_post`` and before pooling and the projection.

    Through open_clip's ``VisionTransformer.forward_intermediates`` (the last
    block, normalised by ``ln_post``), so the numerics are the tower's own.
    Meant for a CLS-token ViT (``pool_type='tok'``, no attention pooling,
    ``ln_post`` on all tokens), where the class token is what open_clip
    pools.

    Args:
        visual (nn.Module): An ``open_clip.transformer.VisionTransformer``.
        images (torch.Tensor): (B, 3, H, W) normalised images.

    Returns:
        tuple[torch.Tensor, torch.Tensor]: ``(cls_token (B, W),
        patch_tokens (B, L, W))``.
    """
    out = visual.forward_intermediates(
        images,
        indices=1,
        normalize_intermediates=True,
        intermediates_only=True,
        output_fmt='NLC',
        output_extra_tokens=True)
    return (out['image_intermediates_prefix'][0][:, 0],
            out['image_intermediates'][0])
