# Copyright (c) mmovl contributors. All rights reserved.
import os.path as osp
from typing import Optional

from mmcv.transforms import BaseTransform
from mmpretrain.registry import TRANSFORMS

from mmovl.embeds.image_cache import load_teacher_embeds


@TRANSFORMS.register_module()
class LoadTeacherEmbedding(BaseTransform):
    """Add an image's cached CLIP-teacher embedding as ``teacher_embed``.

    The cache is written by ``tools/misc/cache_teacher_embeds.py`` and keyed
    by the image path relative to ``data_root``. Pack the field with
    ``PackInputs(algorithm_keys=('teacher_embed', ))``; a model that finds it
    on every sample skips running the teacher. The teacher saw the image
    without augmentation, as in MKT's official code.

    Args:
        cache_file (str): The .safetensors cache.
        data_root (str): The root the cache keys are relative to (the
            dataset's ``data_root``). Defaults to ''.
    """

    def __init__(self, cache_file: str, data_root: str = '') -> None:
        self.cache_file = cache_file
        self.data_root = data_root
        self._index: Optional[dict] = None
        self._embeds = None

    def _load(self) -> None:
        self._index, self._embeds = load_teacher_embeds(self.cache_file)

    def transform(self, results: dict) -> dict:
        if self._index is None:
            self._load()
        path = results['img_path']
        key = osp.relpath(path, self.data_root) if self.data_root else path
        row = self._index.get(osp.normpath(key))
        if row is None:
            raise KeyError(f'{path} (key {key!r}) is not in the teacher '
                           f'embedding cache {self.cache_file}; rebuild it '
                           'for this data set')
        results['teacher_embed'] = self._embeds[row]
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(cache_file={self.cache_file!r})'
