# Copyright (c) mmovl contributors. All rights reserved.
import os.path as osp
import warnings
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

    The cache is checked when first read: finite, unchanged since it was
    written, and, with ``teacher``, made by that teacher (model name,
    weights hash, input size and statistics recorded by the tool); a
    mismatch is an error naming both values.

    Args:
        cache_file (str): The .safetensors cache.
        data_root (str): The root the cache keys are relative to (the
            dataset's ``data_root``). Defaults to ''.
        teacher (dict, optional): The run's teacher, as the model's
            ``teacher`` config (``model_name`` and ``checkpoint`` or
            ``pretrained``), e.g. ``teacher=model.teacher``. Without it the
            teacher is not compared (a warning says so). Defaults to None.
    """

    def __init__(self,
                 cache_file: str,
                 data_root: str = '',
                 teacher: Optional[dict] = None) -> None:
        self.cache_file = cache_file
        self.data_root = data_root
        self.teacher = teacher
        self._index: Optional[dict] = None
        self._embeds = None

    def _expected(self) -> Optional[dict]:
        if self.teacher is None:
            warnings.warn(
                f'LoadTeacherEmbedding({self.cache_file}): no teacher given, '
                'so the cache is not checked against the run\'s teacher; '
                'pass teacher=<the model\'s teacher config>.')
            return None
        from mmovl.embeds.label_cache import weights_id
        cfg = dict(self.teacher)
        # The model and its weights fix the image size and statistics that
        # the tool recorded; both are compared without building the model.
        return dict(
            model_name=str(cfg['model_name']),
            weights=weights_id(cfg.get('checkpoint'), cfg.get('pretrained')))

    def _load(self) -> None:
        self._index, self._embeds = load_teacher_embeds(
            self.cache_file, expect=self._expected())

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
