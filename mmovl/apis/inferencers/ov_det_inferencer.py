# Copyright (c) mmovl contributors. All rights reserved.
"""Open-vocabulary object detection for users: where are *these* things in
each image?"""
import copy
import json
import os
import os.path as osp
from os import PathLike
from typing import List, Optional, Tuple, Union

import mmcv
import numpy as np
import torch
from mmdet.apis import DetInferencer
from mmdet.models.detectors import BaseDetector
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmengine.config import Config
from mmengine.infer import BaseInferencer
from mmengine.logging import MMLogger

from mmovl.utils.fileio import atomic_write, atomic_write_text

from .ov_cls_inferencer import (VocabType, list_images, load_model_weights,
                                read_image, read_vocabulary)

__all__ = ['OpenVocabDetInferencer']


def _read_optional_vocabulary(
        names: Optional[VocabType]) -> Optional[List[str]]:
    """``read_vocabulary`` of an optional argument: None stays None and an
    empty list means "no names" (``read_vocabulary`` refuses both)."""
    if names is None:
        return None
    if isinstance(names, (list, tuple)) and len(names) == 0:
        return []
    return read_vocabulary(names)


class OpenVocabDetInferencer(DetInferencer):
    """Detect any vocabulary of category names in images with an mmovl
    open-vocabulary detector (ViLD).

    mmdet's :class:`DetInferencer` with the vocabulary as data: pass the
    names at construction or with any call, as a list or a text file (one a
    line). The model is built from an mmovl config (pure-Python configs
    whose ``type`` fields are classes are fine), and the checkpoint is read
    with mmovl's safe loader and must fit that model exactly, so a
    checkpoint of another kind is an error, not a half-random detector.

    **Base and novel names.** ViLD-ensemble weighs its text and image
    branches one way for categories it was trained on (base) and the other
    way for the others (novel), so it must know which are which. Unless
    ``novel`` names them, the base names are ``base_classes``, else the
    training classes the checkpoint recorded (``meta['dataset_meta']``:
    ``base_classes``, else ``classes``, as mmengine's runner saves them);
    every other name is novel. A checkpoint that recorded none makes every
    name novel (nothing is known to be trained on), with a warning.

    Args:
        model (str | Config): A ViLD config file or object.
        weights (str, optional): The checkpoint; it must fit the config's
            model exactly. Defaults to None (the weights the config builds,
            with a warning).
        vocabulary (Sequence[str] | str, optional): Category names, or a
            file of them. Defaults to None (the classes the checkpoint
            recorded).
        novel (Sequence[str] | str, optional): Which of the names are novel
            (a list, possibly empty, or a file). Defaults to None (the rule
            above).
        base_classes (Sequence[str] | str, optional): The names the model
            was trained on, for the rule above. Defaults to None (as the
            checkpoint recorded them).
        device (str, optional): Defaults to None (a GPU if there is one,
            else the CPU).
        palette (str | list[tuple]): Box colours, as mmdet's
            ``get_palette`` takes them. Defaults to ``'random'`` (fixed
            random colours per label index).
        show_progress (bool): Show a progress bar. Defaults to True.
        cache_dir (str, optional): Folder of the teacher's on-disk label
            embedding cache, so that a vocabulary is encoded once across
            runs. Defaults to None (memory only).

    Examples:
        >>> from mmovl.apis import OpenVocabDetInferencer
        >>> inferencer = OpenVocabDetInferencer(  # doctest: +SKIP
        ...     'configs/vild/vild_toy_r18_fpn_toy.py', 'epoch_12.pth',
        ...     vocabulary=['red circle', 'blue square', 'purple star'])
        >>> out = inferencer('data/toy_world/val/000000.png')  # doctest: +SKIP
        >>> pred = out['predictions'][0]  # doctest: +SKIP
        >>> pred['names'][0], pred['scores'][0]  # doctest: +SKIP
        ('red circle', 0.93)
        >>> pred['bboxes'][0]  # xyxy, image pixels  # doctest: +SKIP
        [10.2, 4.8, 31.0, 25.9]
    """

    visualize_kwargs: set = DetInferencer.visualize_kwargs | {'resize'}

    def __init__(self,
                 model: Union[str, Config],
                 weights: Optional[str] = None,
                 vocabulary: Optional[VocabType] = None,
                 novel: Optional[VocabType] = None,
                 base_classes: Optional[VocabType] = None,
                 device: Optional[str] = None,
                 palette: Union[str, List[tuple]] = 'random',
                 show_progress: bool = True,
                 cache_dir: Optional[str] = None) -> None:
        if isinstance(model, (str, PathLike)):
            if not osp.isfile(model):
                raise FileNotFoundError(f'Config file not found: {model}')
            model = Config.fromfile(str(model))
        elif not isinstance(model, Config):
            raise TypeError('model must be a config (path or Config), got '
                            f'{type(model).__name__}')
        cfg = copy.deepcopy(model)
        if 'model' not in cfg:
            raise ValueError(f'Config {cfg.filename} has no model.')
        if cache_dir is not None:
            if 'teacher' not in cfg.model:
                raise ValueError('The model has no CLIP teacher whose label '
                                 'embeddings cache_dir could keep.')
            cfg.model.teacher.cache_dir = cache_dir
        if 'visualizer' in cfg:
            # Its backends log training; the inferencer writes its own
            # pictures (and they would only warn, having no save_dir).
            cfg.visualizer.pop('vis_backends', None)
        self.classes: Optional[List[str]] = None
        self.novel_classes: List[str] = []
        self._meta: dict = {}
        super().__init__(
            model=cfg,
            weights=weights,
            device=device,
            scope='mmdet',
            palette=palette,
            show_progress=show_progress)

        recorded = self._meta.get('dataset_meta') or {}
        if base_classes is not None:
            self.base_classes = tuple(read_vocabulary(base_classes))
        else:
            base = recorded.get('base_classes') or recorded.get('classes')
            self.base_classes = tuple(base) if base else None
        if vocabulary is None:
            vocabulary = recorded.get('classes')
            if not vocabulary:
                raise ValueError(
                    'No vocabulary: pass category names (or a file of them);'
                    f' checkpoint {weights} has no classes to fall back to.')
            MMLogger.get_current_instance().info(
                'OpenVocabDetInferencer: no vocabulary given; using the '
                f'{len(vocabulary)} classes the checkpoint was trained on.')
        self.set_vocabulary(vocabulary, novel)

    # -- model ------------------------------------------------------------
    def _init_model(self, cfg: Config, weights: Optional[str],
                    device: str = 'cpu') -> torch.nn.Module:
        """Build the config's model and load ``weights`` with mmovl's safe,
        exact loader (mmengine's would warn and go on with a wrong file)."""
        # Checked before building: another library's model may not even
        # build in mmdet's scope.
        kind = cfg.model.get('type')
        cls = MODELS.get(kind) if isinstance(kind, str) else kind
        if not (isinstance(cls, type) and issubclass(cls, BaseDetector)
                and callable(getattr(cls, 'set_vocabulary', None))):
            name = getattr(kind, '__name__', kind)
            raise TypeError(
                f'{name} is not an open-vocabulary detector (an mmdet '
                'detector with set_vocabulary()); OpenVocabDetInferencer '
                'serves ViLD.')
        model = MODELS.build(cfg.model)
        if weights:
            self._meta = load_model_weights(model, weights)
            MMLogger.get_current_instance().info(
                f'OpenVocabDetInferencer: {type(model).__name__} weights '
                f'from {weights}.')
        else:
            MMLogger.get_current_instance().warning(
                'OpenVocabDetInferencer: no weights given; the detector is '
                'as its config builds it (randomly initialised).')
        model.cfg = cfg
        # set_vocabulary() fills in the classes.
        model.dataset_meta = dict(classes=(), palette=self.palette)
        model.to(device)
        model.eval()
        return model

    # -- vocabulary -------------------------------------------------------
    def _novel_names(self, names: List[str],
                     novel: Optional[VocabType]) -> List[str]:
        chosen = _read_optional_vocabulary(novel)
        if chosen is not None:
            missing = [n for n in chosen if n not in names]
            if missing:
                raise ValueError(f'Novel names not in the vocabulary: '
                                 f'{missing[:5]}')
            return [n for n in names if n in chosen]
        if self.base_classes is None:
            MMLogger.get_current_instance().warning(
                'OpenVocabDetInferencer: the checkpoint recorded no '
                'training classes, so every name is treated as novel; pass '
                'base_classes or novel to say otherwise.')
            return list(names)
        base = set(self.base_classes)
        return [n for n in names if n not in base]

    def set_vocabulary(self,
                       vocabulary: VocabType,
                       novel: Optional[VocabType] = None) -> None:
        """Detect these category names from now on, encoding them now (or
        reading them from the teacher's cache).

        Args:
            vocabulary (Sequence[str] | str | PathLike): Category names, or
                a text file of them, one a line.
            novel (Sequence[str] | str, optional): Which of them are novel.
                Defaults to None (those not among :attr:`base_classes`).
        """
        names = read_vocabulary(vocabulary)
        novel_names = self._novel_names(names, novel)
        self.model.set_vocabulary(names, novel_names)
        self.classes, self.novel_classes = names, novel_names
        meta = dict(classes=tuple(names), palette=self.palette)
        self.model.dataset_meta = meta
        if self.visualizer is not None:
            self.visualizer.dataset_meta = meta

    # -- inference --------------------------------------------------------
    def __call__(self,
                 inputs,
                 vocabulary: Optional[VocabType] = None,
                 novel: Optional[VocabType] = None,
                 batch_size: int = 1,
                 **kwargs) -> dict:
        """Detect the vocabulary's categories in each image.

        Args:
            inputs (str | np.ndarray | list): An image file, a folder of
                images, a BGR array (H, W, 3), or a list of those.
            vocabulary (Sequence[str] | str, optional): New category names
                (or a file of them) to detect from now on. Defaults to None
                (keep the current ones).
            novel (Sequence[str] | str, optional): Which names are novel;
                see the class docstring. Defaults to None.
            batch_size (int): Images per forward pass. Defaults to 1.
            **kwargs: mmdet's ``DetInferencer.__call__`` arguments:
                ``out_dir`` (pictures to ``<out_dir>/vis/``, and with
                ``no_save_pred=False`` predictions to
                ``<out_dir>/preds/<image stem>.json``), ``pred_score_thr``
                (boxes drawn; default 0.3), ``return_vis``, ``show``,
                ``wait_time``, ``draw_pred``, ``return_datasamples``,
                ``print_result``, and ``resize`` (short edge of the drawn
                picture; default None, as the image).

        Returns:
            dict: ``predictions``: per image, ``bboxes`` (xyxy, in image
            pixels), ``scores``, ``labels`` (indices into the vocabulary)
            and ``names``, as the model's ``test_cfg`` keeps them (no
            score threshold beyond it); ``visualization``: the drawn RGB
            pictures when asked for.
        """
        for key in ('texts', 'stuff_texts', 'custom_entities',
                    'tokens_positive'):
            if key in kwargs:
                raise TypeError(f'{key!r} is for grounding models; give '
                                'OpenVocabDetInferencer a vocabulary.')
        if vocabulary is not None:
            self.set_vocabulary(vocabulary, novel)
        elif novel is not None:
            self.set_vocabulary(self.classes, novel)
        return super().__call__(inputs, batch_size=batch_size, **kwargs)

    def _inputs_to_list(self, inputs) -> list:
        inputs = self._list_inputs(inputs)
        self._stems = _unique_stems(
            [i for i in inputs if isinstance(i, str)])
        return inputs

    def _list_inputs(self, inputs) -> list:
        return list_images(inputs)

    def preprocess(self, inputs: list, batch_size: int = 1, **kwargs):
        """Read (with a clear error per input) and transform the images, in
        batches of ``(inputs, data)`` for ``test_step``."""

        def load(indexed):
            index, input_ = indexed
            # The config's loader became mmdet's InferencerLoader, which
            # takes the array.
            data = self.pipeline(dict(img=read_image(input_, index)))
            if isinstance(input_, str):
                data['data_samples'].set_metainfo(dict(img_path=input_))
            return input_, data

        chunks = BaseInferencer._get_chunk_data(
            self, map(load, enumerate(inputs)), batch_size)
        yield from map(self.collate_fn, chunks)

    def _name(self, input_, count: int) -> Tuple[str, str]:
        """(stem, extension) of an input's output files: the file's name,
        with its folders where two inputs of the call share a name (so that
        ``d1/x.png`` and ``d2/x.png`` do not overwrite each other's
        outputs); a counter for arrays."""
        if isinstance(input_, str):
            stem = getattr(self, '_stems', {}).get(input_)
            ext = osp.splitext(input_)[1]
            if stem is None:
                stem = osp.splitext(osp.basename(input_))[0]
            return stem, ext
        return f'{count:08d}', '.png'

    def visualize(self,
                  inputs: list,
                  preds: List[DetDataSample],
                  return_vis: bool = False,
                  show: bool = False,
                  wait_time: int = 0,
                  draw_pred: bool = True,
                  pred_score_thr: float = 0.3,
                  no_save_vis: bool = False,
                  img_out_dir: str = '',
                  resize: Optional[int] = None,
                  **kwargs) -> Optional[List[np.ndarray]]:
        """Draw each image's boxes with their names and scores (mmdet's
        ``DetLocalVisualizer``), written atomically to
        ``<img_out_dir>/vis/<image name>``.

        Returns:
            list[np.ndarray] | None: The RGB pictures, or None if nothing
            asks for them.
        """
        if no_save_vis:
            img_out_dir = ''
        if not show and not img_out_dir and not return_vis:
            return None
        if self.visualizer is None:
            from mmdet.visualization import DetLocalVisualizer
            self.visualizer = DetLocalVisualizer(
                name=f'ov_det_inferencer_{id(self)}')
            self.visualizer.dataset_meta = self.model.dataset_meta
        pictures = []
        for i, (input_, pred) in enumerate(zip(inputs, preds)):
            image = read_image(input_, i)[..., ::-1]  # BGR -> RGB
            if resize is not None:
                h, w = image.shape[:2]
                factor = resize / min(h, w)
                image = mmcv.imrescale(image, factor)
                # clone() is shallow: copy the instances before scaling, so
                # that the returned predictions stay in image pixels.
                pred = pred.clone()
                pred.pred_instances = pred.pred_instances.clone()
                pred.pred_instances.bboxes = \
                    pred.pred_instances.bboxes * factor
            stem, ext = self._name(input_, self.num_visualized_imgs)
            self.num_visualized_imgs += 1

            def draw(out_file=None):
                self.visualizer.add_datasample(
                    stem + ext,
                    np.ascontiguousarray(image),
                    pred,
                    show=show,
                    wait_time=wait_time,
                    draw_gt=False,
                    draw_pred=draw_pred,
                    pred_score_thr=pred_score_thr,
                    out_file=out_file)

            if img_out_dir:
                atomic_write(osp.join(img_out_dir, 'vis', stem + ext), draw)
            else:
                draw()
            pictures.append(self.visualizer.get_image())
        return pictures

    def pred2dict(self, data_sample: DetDataSample,
                  pred_out_dir: str = '') -> dict:
        """mmdet's prediction dict plus the label ``names``; written
        atomically to ``<pred_out_dir>/preds/<image stem>.json`` if
        ``pred_out_dir`` is given."""
        result = super().pred2dict(data_sample, '')
        result['names'] = [self.classes[i] for i in result.get('labels', [])]
        img_path = data_sample.get('img_path')
        if img_path is not None:  # which input this prediction is of
            result['img_path'] = img_path
        if pred_out_dir:
            stem, _ = self._name(data_sample.get('img_path'),
                                 self.num_predicted_imgs)
            self.num_predicted_imgs += 1
            atomic_write_text(
                osp.join(pred_out_dir, 'preds', stem + '.json'),
                json.dumps(result))
        return result

    @staticmethod
    def list_models(scope: Optional[str] = None,
                    patterns: str = r'.*') -> List[str]:
        """mmovl has no model zoo to name models from: pass a config."""
        return []


def _unique_stems(paths: List[str]) -> dict:
    """Output stems of input paths: the file name without extension, or,
    for names that several different paths share, the path relative to
    their common folder with ``__`` for the separators."""
    by_stem: dict = {}
    for path in dict.fromkeys(paths):
        stem = osp.splitext(osp.basename(path))[0]
        by_stem.setdefault(stem, []).append(path)
    stems = {}
    for stem, group in by_stem.items():
        if len(group) == 1:
            stems[group[0]] = stem
            continue
        absolute = [osp.abspath(p) for p in group]
        root = osp.commonpath([osp.dirname(p) for p in absolute])
        for path, full in zip(group, absolute):
            rel = osp.splitext(osp.relpath(full, root))[0]
            stems[path] = rel.replace(os.sep, '__')
    return stems
