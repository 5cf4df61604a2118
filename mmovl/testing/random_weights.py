# Copyright (c) mmovl contributors. All rights reserved.
"""Checkpoints with random weights at the real architectures, in the formats
the real configs load, so a config can start without downloading weights.

- CLIP: an open_clip model's plain state dict as ``.safetensors`` (what
  ``CLIPTeacher`` and ``OpenCLIPViT`` read from ``checkpoint=``).
- ImageNet ResNets in mmpretrain's layout: an ``ImageClassifier`` checkpoint
  (``state_dict`` with ``backbone.`` / ``head.`` keys), as mmpretrain's
  model zoo ships them.
- ``torchvision://`` ResNets: torchvision's state dict under the file name
  of its download URL in ``$TORCH_HOME/hub/checkpoints``, where
  ``torch.hub`` looks before downloading.
"""
import os
import os.path as osp
from typing import Dict

import torch

from mmovl.utils import atomic_write

__all__ = [
    'write_open_clip_checkpoint', 'write_mmpretrain_resnet_checkpoint',
    'write_torchvision_checkpoint'
]


def _contiguous_copy(state: Dict[str, torch.Tensor]) -> dict:
    # safetensors refuses tensors that share memory (tied weights).
    return {k: v.detach().clone().contiguous() for k, v in state.items()}


def write_open_clip_checkpoint(path: str, model_name: str,
                               seed: int = 0) -> str:
    """Write a randomly initialised open_clip ``model_name`` to ``path``
    (``.safetensors``) unless that file exists."""
    if osp.isfile(path):
        return path
    import open_clip
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    model = open_clip.create_model(model_name, pretrained=None)
    state = _contiguous_copy(model.state_dict())
    return atomic_write(path, lambda tmp: save_file(state, tmp))


def write_mmpretrain_resnet_checkpoint(path: str, depth: int,
                                       num_classes: int = 1000,
                                       seed: int = 0) -> str:
    """Write a random ImageNet ``ResNet-<depth>`` classifier checkpoint in
    mmpretrain's layout to ``path`` unless that file exists."""
    if osp.isfile(path):
        return path
    from mmpretrain.models import ResNet

    torch.manual_seed(seed)
    backbone = ResNet(depth=depth)
    backbone.init_weights()
    state = {f'backbone.{k}': v for k, v in backbone.state_dict().items()}
    state['head.fc.weight'] = torch.randn(num_classes, 2048) * 0.01
    state['head.fc.bias'] = torch.zeros(num_classes)
    ckpt = dict(meta=dict(note='random weights, mmovl rehearsal'),
                state_dict=state)
    return atomic_write(path, lambda tmp: torch.save(ckpt, tmp))


def write_torchvision_checkpoint(torch_home: str, name: str = 'resnet50',
                                 seed: int = 0) -> str:
    """Write random torchvision ``name`` weights where ``torch.hub`` finds
    the download of ``torchvision://<name>`` under ``torch_home``."""
    import torchvision
    from mmengine.runner.checkpoint import get_torchvision_models

    url = get_torchvision_models()[name]
    path = osp.join(torch_home, 'hub', 'checkpoints', osp.basename(url))
    if osp.isfile(path):
        return path
    os.makedirs(osp.dirname(path), exist_ok=True)
    torch.manual_seed(seed)
    model = getattr(torchvision.models, name)(weights=None)
    state = model.state_dict()
    return atomic_write(path, lambda tmp: torch.save(state, tmp))
