# Copyright (c) mmovl contributors. All rights reserved.
"""Open-vocabulary image classification for users: which of *these* labels
does each image show?"""
import copy
import os
import os.path as osp
import time
from os import PathLike
from pathlib import Path
from typing import List, Optional, Sequence, Union

import mmcv
import numpy as np
import torch
from mmdet.utils.misc import IMG_EXTENSIONS
from mmengine.config import Config
from mmengine.dataset import Compose, default_collate
from mmengine.logging import MMLogger
from mmengine.model import BaseModel
from mmpretrain.apis import ImageClassificationInferencer
from mmpretrain.structures import DataSample
from mmpretrain.visualization.utils import get_adaptive_scale

from mmovl.datasets import read_label_file
from mmovl.models.classifiers.utils import check_vocabulary
from mmovl.utils.checkpoint import check_state_dict_fits, safe_torch_load
from mmovl.utils.fileio import atomic_write
from mmovl.utils.images import read_image

__all__ = [
    'OpenVocabClsInferencer', 'list_images', 'load_model_weights',
    'read_vocabulary'
]

VocabType = Union[Sequence[str], str, PathLike]


def _prefixes(keys) -> List[str]:
    return sorted({k.split('.')[0] for k in keys})


def load_model_weights(model: torch.nn.Module, checkpoint: str) -> dict:
    """Load a checkpoint into ``model``, refusing one of another model.

    The file is read with :func:`mmovl.utils.safe_torch_load`
    (``weights_only=True`` plus mmengine's own types), never a bare
    ``torch.load``. Every weight of the model must be in the checkpoint with
    its shape, and nothing else: a checkpoint of another kind (a UniCL model
    given to MKT, a detector...) is an error that says which weights differ,
    instead of mmengine's warning and a model that is half random.

    Args:
        model (torch.nn.Module): The model, built from its config.
        checkpoint (str): An mmengine checkpoint (``{'meta': ...,
            'state_dict': ...}``) or a bare state dict.

    Returns:
        dict: The checkpoint's ``meta`` (empty if it has none).

    Examples:
        >>> meta = load_model_weights(model, 'epoch_10.pth')  # doctest: +SKIP
        >>> meta['dataset_meta']['classes'][:2]  # doctest: +SKIP
        ('red circle', 'red square')
    """
    ckpt = safe_torch_load(checkpoint, map_location='cpu')
    meta = {}
    if isinstance(ckpt, dict) and isinstance(ckpt.get('state_dict'), dict):
        meta = ckpt.get('meta') or {}
        ckpt = ckpt['state_dict']
    if not (isinstance(ckpt, dict) and ckpt and all(
            isinstance(v, torch.Tensor) for v in ckpt.values())):
        raise ValueError(
            f'Checkpoint {checkpoint} holds no state dict of tensors (as '
            "mmengine writes, under 'state_dict', or a bare one).")
    # Left by (Distributed)DataParallel.
    state = {k[len('module.'):] if k.startswith('module.') else k: v
             for k, v in ckpt.items()}
    expected = model.state_dict()
    ours, theirs = _prefixes(expected), _prefixes(state)
    where = '' if ours == theirs else (
        f'Its weights are under {theirs}, the model\'s under {ours}. ')
    check_state_dict_fits(
        expected, state,
        f'Checkpoint {checkpoint} does not fit {type(model).__name__} as its '
        'config builds it',
        hint=where + 'Is it a checkpoint of another kind of model? Pass the '
        'config it was trained with.')
    model.load_state_dict(state, strict=True)
    return meta


def read_vocabulary(vocabulary: VocabType) -> List[str]:
    """Label names from a sequence or a text file (one name a line).

    Names are stripped of surrounding white space; an empty vocabulary, an
    empty name or a repeated name is an error that says which.

    Args:
        vocabulary (Sequence[str] | str | PathLike): The names, or the path
            of a file of names.

    Returns:
        list[str]: The names, in order.

    Examples:
        >>> read_vocabulary(['red circle', ' blue square '])
        ['red circle', 'blue square']
    """
    source = 'The vocabulary'
    if isinstance(vocabulary, (str, PathLike)):
        source = f'Label file {vocabulary}'
        names = list(read_label_file(str(vocabulary)))
    else:
        names = list(vocabulary)
        bad = [n for n in names if not isinstance(n, str)]
        if bad:
            raise TypeError(f'Label names must be strings, got {bad[:3]}')
        names = [n.strip() for n in names]
        if '' in names:
            raise ValueError(f'The vocabulary has an empty name at position '
                             f'{names.index("")}')
    try:
        return check_vocabulary(names)
    except ValueError as e:
        raise ValueError(f'{source}: {e}') from None


def list_images(inputs) -> list:
    """Expand image folders (sorted by name) in a list of inputs.

    Args:
        inputs (str | PathLike | np.ndarray | list): Image files, folders,
            arrays, or a list of them.

    Returns:
        list: Image paths (str) and arrays, in order.

    Examples:
        >>> list_images(['data/toy_world/val'])[:2]  # doctest: +SKIP
        ['data/toy_world/val/000000.png', 'data/toy_world/val/000001.png']
    """
    if not isinstance(inputs, (list, tuple)):
        inputs = [inputs]
    images = []
    for item in inputs:
        if isinstance(item, PathLike):
            item = str(item)
        if isinstance(item, str) and osp.isdir(item):
            files = sorted(
                f for f in os.listdir(item)
                if f.lower().endswith(IMG_EXTENSIONS)
                and osp.isfile(osp.join(item, f)))
            if not files:
                raise FileNotFoundError(
                    f'No images ({", ".join(IMG_EXTENSIONS)}) in {item}')
            images.extend(osp.join(item, f) for f in files)
        else:
            images.append(item)
    return images


def _build_model(cfg: Config) -> BaseModel:
    """The config's model, as :func:`mmpretrain.apis.get_model` builds it
    minus its weights and dataset look-up (which needs registry names, not
    the classes of pure-Python configs)."""
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS

    cfg.model.setdefault('data_preprocessor', cfg.get('data_preprocessor'))
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(cfg.model)
    model._config = cfg
    model._dataset_meta = {}
    return model


class OpenVocabClsInferencer(ImageClassificationInferencer):
    """Rank any vocabulary of label names on images, with an mmovl
    open-vocabulary classifier (MKT, CPRFL or UniCL).

    The label names are data: pass them at construction or with any call,
    as a list or a text file. Their embeddings are computed once per
    vocabulary and kept (by the model's CLIP teacher, in memory, and on disk
    too with ``cache_dir``), so later images cost only the scoring.

    Args:
        model (str | Config | BaseModel): A config file or object of an
            open-vocabulary classifier, or a built model that carries its
            config as ``model._config`` (as mmpretrain's ``get_model``
            leaves it).
        pretrained (str, optional): The checkpoint, loaded with mmovl's safe
            loader; it must fit the config's model exactly. Defaults to None
            (the weights the config builds).
        vocabulary (Sequence[str] | str, optional): Label names, or a file of
            them. Defaults to None (the classes saved in the checkpoint).
        device (str | torch.device, optional): Defaults to None (the CPU, or
            wherever a given model is).
        cache_dir (str, optional): Folder of the teacher's on-disk label
            embedding cache, so that a vocabulary is encoded once across
            runs. Defaults to None (memory only).
        **kwargs: Passed to :class:`ImageClassificationInferencer`.

    Examples:
        >>> from mmovl.apis import OpenVocabClsInferencer
        >>> inferencer = OpenVocabClsInferencer(  # doctest: +SKIP
        ...     'configs/mkt/mkt_toy_vit_p8_10e_toy.py', 'epoch_10.pth',
        ...     vocabulary=['red circle', 'blue square', 'green star'])
        >>> image = 'data/toy_world/val/000000.png'
        >>> result = inferencer(image, topk=2)[0]  # doctest: +SKIP
        >>> result['labels'], result['scores']  # doctest: +SKIP
        (['red circle', 'green star'], [0.81, 0.42])
    """

    visualize_kwargs: set = {
        'resize', 'rescale_factor', 'draw_score', 'show', 'show_dir',
        'wait_time', 'topk'
    }
    postprocess_kwargs: set = {'topk'}

    def __init__(self,
                 model: Union[str, Config, BaseModel],
                 pretrained: Optional[str] = None,
                 vocabulary: Optional[VocabType] = None,
                 device: Union[str, torch.device, None] = None,
                 cache_dir: Optional[str] = None,
                 **kwargs) -> None:
        logger = MMLogger.get_current_instance()
        if not isinstance(model, BaseModel):
            if isinstance(model, (str, PathLike)):
                if not osp.isfile(model):
                    raise FileNotFoundError(f'Config file not found: {model}')
                model = Config.fromfile(str(model))
            elif not isinstance(model, Config):
                raise TypeError('model must be a config (path or Config) or '
                                f'a built model, got {type(model).__name__}')
            cfg = copy.deepcopy(model)
            if cache_dir is not None:
                if 'teacher' not in cfg.model:
                    kind = getattr(cfg.model.type, '__name__', cfg.model.type)
                    raise ValueError(f'{kind} has no CLIP teacher whose label '
                                     'embeddings cache_dir could keep.')
                cfg.model.teacher.cache_dir = cache_dir
            model = _build_model(cfg)
        elif not hasattr(model, '_config'):
            raise ValueError('A built model must carry its config as '
                             '`model._config` (mmpretrain.apis.get_model '
                             'keeps it there; the test pipeline comes from '
                             'it); or pass the config.')
        if not callable(getattr(model, 'set_vocabulary', None)):
            raise TypeError(
                f'{type(model).__name__} is not an open-vocabulary classifier '
                '(it has no set_vocabulary()); OpenVocabClsInferencer serves '
                'MKT, CPRFL and UniCL.')

        meta = {}
        if pretrained:
            meta = load_model_weights(model, pretrained)
            logger.info(f'OpenVocabClsInferencer: {type(model).__name__} '
                        f'weights from {pretrained}.')
        super().__init__(
            model=model, pretrained=False, device=device, **kwargs)

        self.classes: Optional[List[str]] = None
        if vocabulary is None:
            vocabulary = (meta.get('dataset_meta') or {}).get('classes')
            if not vocabulary:
                raise ValueError(
                    'No vocabulary: pass label names (or a file of them); '
                    f'checkpoint {pretrained} has no classes to fall back to.')
            logger.info('OpenVocabClsInferencer: no vocabulary given; using '
                        f'the {len(vocabulary)} classes the checkpoint was '
                        'trained on.')
        self.set_vocabulary(vocabulary)

    def set_vocabulary(self, vocabulary: VocabType) -> None:
        """Score these label names from now on, encoding them now (or
        reading them from the teacher's cache).

        Args:
            vocabulary (Sequence[str] | str | PathLike): Label names, or a
                text file of them, one a line.
        """
        names = read_vocabulary(vocabulary)
        if names == self.classes:
            return
        self.model.set_vocabulary(names)
        self.classes = names
        # Encode now, so that the first image is not charged with it.
        if callable(getattr(self.model, 'label_embeds', None)):
            start = time.perf_counter()
            with torch.no_grad():
                self.model.label_embeds()
            MMLogger.get_current_instance().info(
                f'OpenVocabClsInferencer: {len(names)} label embeddings '
                f'ready in {time.perf_counter() - start:.2f} s.')

    def __call__(self,
                 inputs,
                 vocabulary: Optional[VocabType] = None,
                 return_datasamples: bool = False,
                 batch_size: int = 1,
                 **kwargs) -> list:
        """Rank the vocabulary's labels on each image.

        Args:
            inputs (str | np.ndarray | list): An image file, a folder of
                images, a BGR array (H, W, 3), or a list of those.
            vocabulary (Sequence[str] | str, optional): New label names (or a
                file of them) to score from now on. Defaults to None (keep
                the current ones).
            return_datasamples (bool): Return the model's
                :obj:`DataSample` objects. Defaults to False.
            batch_size (int): Images per forward pass. Defaults to 1.
            topk (int, optional): Labels in ``labels`` / ``scores`` and in
                the drawn picture. None ranks them all. Defaults to 5.
            show_dir (str, optional): Write pictures with the top labels
                drawn here, one ``<image name>.png`` per input. Defaults to
                None.
            resize (int, optional): Short edge of the drawn picture.
                Defaults to None (as the image).
            rescale_factor (float, optional): Scale of the drawn picture,
                if no ``resize``. Defaults to None.
            draw_score (bool): Draw the scores. Defaults to True.
            show (bool): Show the pictures in a window. Defaults to False.
            wait_time (float): Seconds to show each. Defaults to 0.

        Returns:
            list[dict]: Per image, ``labels`` and ``scores`` (the top
            labels, best first), ``pred_scores`` (every label's score, in
            vocabulary order), and mmpretrain's ``pred_label``,
            ``pred_score``, ``pred_class`` of the best label.
        """
        topk = kwargs.get('topk', 5)
        if topk is not None and (isinstance(topk, bool)
                                 or not isinstance(topk, int) or topk < 1):
            raise ValueError(f'topk must be a positive integer or None, got '
                             f'{topk!r}')
        if vocabulary is not None:
            self.set_vocabulary(vocabulary)
        return super().__call__(
            inputs,
            return_datasamples=return_datasamples,
            batch_size=batch_size,
            **kwargs)

    def _inputs_to_list(self, inputs) -> list:
        return list_images(inputs)

    def preprocess(self, inputs: list, batch_size: int = 1):
        """Read and transform the images, in batches for ``test_step``."""

        def load(indexed):
            img = read_image(indexed[1], indexed[0])
            return dict(
                img=img, img_shape=img.shape[:2], ori_shape=img.shape[:2])

        pipeline = Compose([load, self.pipeline])
        chunks = self._get_chunk_data(
            map(pipeline, enumerate(inputs)), batch_size)
        yield from map(default_collate, chunks)

    def _ranked(self, sample: DataSample,
                topk: Optional[int]) -> List[int]:
        scores = sample.pred_score.detach().float().cpu().numpy()
        # Stable: tied scores keep vocabulary order.
        order = np.argsort(-scores, kind='stable')
        return order.tolist() if topk is None else order[:topk].tolist()

    def visualize(self,
                  ori_inputs: list,
                  preds: List[DataSample],
                  show: bool = False,
                  wait_time: float = 0,
                  resize: Optional[int] = None,
                  rescale_factor: Optional[float] = None,
                  draw_score: bool = True,
                  show_dir: Optional[str] = None,
                  topk: Optional[int] = 5) -> Optional[List[np.ndarray]]:
        """Draw each image's top labels (and scores) on it.

        Returns:
            list[np.ndarray] | None: The RGB pictures, or None if neither
            ``show`` nor ``show_dir`` asks for them.
        """
        if not show and show_dir is None:
            return None
        if self.visualizer is None:
            from mmpretrain.visualization import UniversalVisualizer
            self.visualizer = UniversalVisualizer()
        if show_dir is not None:
            os.makedirs(show_dir, exist_ok=True)
        text_cfg = self.visualizer.DEFAULT_TEXT_CFG
        pictures, used = [], set()
        for i, (input_, sample) in enumerate(zip(ori_inputs, preds)):
            image = read_image(input_, i)[..., ::-1]  # BGR -> RGB
            if resize is not None:
                h, w = image.shape[:2]
                size = (resize, resize * h // w) if w < h else \
                    (resize * w // h, resize)
                image = mmcv.imresize(image, size)
            elif rescale_factor is not None:
                image = mmcv.imrescale(image, rescale_factor)
            lines = [
                self.classes[j] +
                (f' {sample.pred_score[j].item():.2f}' if draw_score else '')
                for j in self._ranked(sample, topk)
            ]
            scale = get_adaptive_scale(image.shape[:2])
            self.visualizer.set_image(np.ascontiguousarray(image))
            self.visualizer.draw_texts(
                '\n'.join(lines),
                np.array([scale * 5, scale * 5]),
                font_sizes=int(scale * 7),
                colors=text_cfg['color'],
                font_families=text_cfg['family'],
                vertical_alignments=text_cfg['verticalalignment'],
                horizontal_alignments=text_cfg['horizontalalignment'],
                bboxes=text_cfg['bbox'])
            drawn = self.visualizer.get_image()
            pictures.append(drawn)
            name = Path(input_).stem if isinstance(input_, str) else str(i)
            if name in used:  # same file name from two folders
                name = f'{name}_{i}'
            used.add(name)
            if show:
                self.visualizer.show(drawn, win_name=name, wait_time=wait_time)
            if show_dir is not None:
                atomic_write(
                    osp.join(show_dir, f'{name}.png'),
                    lambda tmp: mmcv.imwrite(drawn[..., ::-1], tmp))
        if show:
            self.visualizer.close()
        return pictures

    def postprocess(self,
                    preds: List[DataSample],
                    visualization: Optional[List[np.ndarray]],
                    return_datasamples: bool = False,
                    topk: Optional[int] = 5) -> list:
        if return_datasamples:
            return preds
        results = []
        for sample in preds:
            scores = sample.pred_score.detach().float().cpu().numpy()
            ranked = self._ranked(sample, topk)
            best = ranked[0]
            results.append(
                dict(
                    labels=[self.classes[j] for j in ranked],
                    scores=[float(scores[j]) for j in ranked],
                    pred_scores=scores,
                    pred_label=best,
                    pred_score=float(scores[best]),
                    pred_class=self.classes[best]))
        return results

    @staticmethod
    def list_models(pattern: Optional[str] = None) -> List[str]:
        """mmovl has no model zoo to name models from: pass a config."""
        return []
