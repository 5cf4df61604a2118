# Copyright (c) mmovl contributors. All rights reserved.
"""Encode a data set's images with a CLIP teacher, and cache the result."""
import json
import os.path as osp
from typing import Dict, List, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmengine.dataset import default_collate
from mmengine.utils import ProgressBar
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch.utils.data import DataLoader

from mmovl.utils.fileio import atomic_write


@torch.no_grad()
def encode_dataset_images(teacher,
                          dataset,
                          batch_size: int = 64,
                          num_workers: int = 0,
                          progress: bool = True,
                          normalize: bool = True) -> torch.Tensor:
    """(N, D) teacher embeddings of every image of ``dataset``, in order.

    The dataset's pipeline must load the image and pack it
    (``LoadImageFromFile`` + ``PackInputs``); images are converted from
    mmcv's BGR to RGB, resized to the teacher's input size and normalised
    with the teacher's mean and std.

    Args:
        teacher (CLIPTeacher): The teacher.
        dataset: A dataset giving ``inputs`` (3, H, W) uint8 BGR tensors.
        batch_size (int): Images per forward pass. Defaults to 64.
        num_workers (int): Data loading workers. Defaults to 0.
        progress (bool): Show a progress bar. Defaults to True.
        normalize (bool): L2-normalise the embeddings. Defaults to True.

    Returns:
        torch.Tensor: The embeddings, on the CPU.
    """
    mean = torch.tensor(teacher.mean).view(1, 3, 1, 1) * 255
    std = torch.tensor(teacher.std).view(1, 3, 1, 1) * 255
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False,
                        num_workers=num_workers, collate_fn=default_collate)
    bar = ProgressBar(len(dataset)) if progress else None
    out = []
    for batch in loader:
        images = batch['inputs'].float()[:, [2, 1, 0]]
        if teacher.image_size and tuple(
                images.shape[-2:]) != tuple(teacher.image_size):
            images = F.interpolate(images, size=teacher.image_size,
                                   mode='bicubic', align_corners=False)
        images = ((images - mean) / std).to(teacher.device)
        out.append(teacher.encode_image(images, normalize=normalize).cpu())
        if bar is not None:
            bar.update(len(images))
    return torch.cat(out)


def save_teacher_embeds(path: str, keys: Sequence[str],
                        embeds: torch.Tensor, **info) -> None:
    """Write embeddings keyed by image path to a .safetensors file,
    atomically (a crash leaves the old file or none, never half a file).

    Args:
        path (str): Output file.
        keys (Sequence[str]): One key per row (image paths relative to the
            data root).
        embeds (torch.Tensor): (N, D) embeddings.
        **info: Strings stored in the file's metadata (e.g. the teacher).
    """
    if len(keys) != len(embeds) or len(set(keys)) != len(keys):
        raise ValueError('keys must be unique, one per embedding row')
    meta = {'keys': json.dumps(list(keys))}
    meta.update({k: str(v) for k, v in info.items()})
    atomic_write(
        path, lambda tmp: save_file({'embeds': embeds.contiguous().float()},
                                    tmp, metadata=meta))


def load_teacher_embeds(path: str) -> Tuple[Dict[str, int], torch.Tensor]:
    """Read a file of :func:`save_teacher_embeds`.

    Returns:
        tuple: ``{key: row}`` and the (N, D) embeddings.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'Teacher embedding cache not found: {path}')
    try:
        from safetensors import safe_open
        with safe_open(path, framework='pt') as f:
            meta = f.metadata() or {}
        embeds = load_file(path)['embeds']
        keys: List[str] = json.loads(meta['keys'])
    except (SafetensorError, KeyError, ValueError, OSError) as e:
        raise ValueError(
            f'Teacher embedding cache {path} is corrupt or not a cache '
            f'written by mmovl ({type(e).__name__}: {e})') from e
    if len(keys) != len(embeds):
        raise ValueError(f'{path}: {len(keys)} keys for {len(embeds)} rows')
    return {k: i for i, k in enumerate(keys)}, embeds
