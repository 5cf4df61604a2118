# Copyright (c) mmovl contributors. All rights reserved.
"""Encode a data set's images with a CLIP teacher, and cache the result."""
import json
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmengine.dataset import default_collate
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch.utils.data import DataLoader

from mmovl.embeds.label_cache import tensor_sha256
from mmovl.utils.fileio import atomic_write
from mmovl.utils.progress import Progress


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
        progress (bool): Show the progress (a bar on a terminal, a few
            lines otherwise). Defaults to True.
        normalize (bool): L2-normalise the embeddings. Defaults to True.

    Returns:
        torch.Tensor: The embeddings, on the CPU.
    """
    mean = torch.tensor(teacher.mean).view(1, 3, 1, 1) * 255
    std = torch.tensor(teacher.std).view(1, 3, 1, 1) * 255
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False,
                        num_workers=num_workers, collate_fn=default_collate)
    bar = Progress(len(dataset), 'teacher image embeddings') \
        if progress else None
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
    if bar is not None:
        bar.close()
    return torch.cat(out)


def teacher_provenance(teacher) -> Dict[str, str]:
    """What made a cache of ``teacher``'s image embeddings, as strings: the
    model, its weights (:attr:`CLIPTeacher.weights_id`) and how images were
    brought to it (size, interpolation, mean, std, from mmcv's BGR)."""
    return dict(
        model_name=str(teacher.model_name),
        weights=str(teacher.weights_id),
        image_size=json.dumps(list(teacher.image_size or [])),
        mean=json.dumps([float(m) for m in teacher.mean]),
        std=json.dumps([float(s) for s in teacher.std]),
        transform='bgr->rgb, bicubic resize to image_size, (x-mean)/std')


def save_teacher_embeds(path: str, keys: Sequence[str],
                        embeds: torch.Tensor, **info) -> None:
    """Write embeddings keyed by image path to a .safetensors file,
    atomically (a crash leaves the old file or none, never half a file).

    The file's header holds the keys, ``info`` (give it
    :func:`teacher_provenance` so that readers can check the teacher) and
    the SHA-256 of the matrix (``content_sha256``).

    Args:
        path (str): Output file.
        keys (Sequence[str]): One key per row (image paths relative to the
            data root).
        embeds (torch.Tensor): (N, D) finite embeddings.
        **info: Strings stored in the file's metadata (e.g. the teacher).
    """
    if len(keys) != len(embeds) or len(set(keys)) != len(keys):
        raise ValueError('keys must be unique, one per embedding row')
    if not torch.isfinite(embeds).all():
        bad = (~torch.isfinite(embeds)).any(1).nonzero().flatten()
        raise ValueError(f'Refusing to write {path}: rows '
                         f'{[keys[i] for i in bad[:5].tolist()]} hold NaN '
                         'or infinite values.')
    matrix = embeds.detach().cpu().contiguous().float()
    meta = {'keys': json.dumps(list(keys))}
    meta.update({k: str(v) for k, v in info.items()})
    meta['content_sha256'] = tensor_sha256(matrix)
    atomic_write(
        path, lambda tmp: save_file({'embeds': matrix}, tmp, metadata=meta))


def load_teacher_embeds(
        path: str,
        expect: Optional[Dict[str, str]] = None
) -> Tuple[Dict[str, int], torch.Tensor]:
    """Read a file of :func:`save_teacher_embeds`, checking it.

    The matrix must be finite and equal to what was written (its recorded
    SHA-256); with ``expect`` (e.g. :func:`teacher_provenance` of the
    teacher this run would use), every expected field must be recorded in
    the file with the same value.

    Args:
        path (str): The cache file.
        expect (dict[str, str], optional): Fields the file's header must
            hold. Defaults to None.

    Returns:
        tuple: ``{key: row}`` and the (N, D) embeddings.

    Raises:
        ValueError: Naming the file, and for a provenance mismatch the
            recorded and the expected value.
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
    recorded = meta.get('content_sha256')
    if recorded is not None and recorded != tensor_sha256(embeds):
        raise ValueError(f'Teacher embedding cache {path}: its matrix was '
                         'changed after it was written (content SHA-256 '
                         'differs from the recorded one); rebuild it.')
    if not torch.isfinite(embeds).all():
        bad = (~torch.isfinite(embeds)).any(1).nonzero().flatten()
        raise ValueError(
            f'Teacher embedding cache {path} holds NaN or infinite values '
            f'(for {[keys[i] for i in bad[:5].tolist()]}); rebuild it.')
    for field, value in (expect or {}).items():
        if meta.get(field) != value:
            raise ValueError(
                f'Teacher embedding cache {path} was made with {field} = '
                f'{meta.get(field)!r}, but this run\'s teacher has {field} = '
                f'{value!r}: rebuild it with tools/misc/'
                'cache_teacher_embeds.py for this teacher.')
    return {k: i for i, k in enumerate(keys)}, embeds
