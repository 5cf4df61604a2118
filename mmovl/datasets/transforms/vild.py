# Copyright (c) mmovl contributors. All rights reserved.
"""Pipeline steps that feed ViLD its precomputed CLIP proposal embeddings."""
from typing import Optional

import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmdet.datasets.transforms import PackDetInputs
from mmdet.registry import TRANSFORMS
from mmengine.structures import InstanceData

from mmovl.embeds.proposal_store import ProposalEmbedStore


@TRANSFORMS.register_module()
class LoadCLIPProposalEmbeds(BaseTransform):
    """Add an image's precomputed proposals and their CLIP embeddings.

    Reads the store written by ``tools/misc/precompute_vild_embeds.py``
    (safetensors shards, opened lazily on first use in each worker) and sets

    - ``clip_proposals``: (M, 4) float32 xyxy boxes in **original-image**
      pixels. Geometric transforms do not touch them; :class:`PackViLDInputs`
      maps them with the ``homography_matrix`` that mmdet's geometric
      transforms record (``Resize``, ``RandomResize``, ``RandomFlip``,
      ``RandomCrop``, ...), so scale jitter with crops works.
    - ``clip_embeds``: (M, D) float32 L2-normalised embeddings.
    - ``clip_teacher``: the CLIP teacher the store records (``model_name``
      and ``weights``, see :attr:`ProposalEmbedStore.teacher`) or None;
      ``ViLD`` refuses to train on proposals of another teacher than its
      own.

    Required keys: ``img_id``. Added keys: ``clip_proposals``,
    ``clip_embeds``, ``clip_teacher``.

    Args:
        store_dir (str): The store folder (with ``index.json``).

    Examples:
        >>> load = LoadCLIPProposalEmbeds('data/embeds')  # doctest: +SKIP
        >>> out = load(dict(img_id=139))  # doctest: +SKIP
        >>> out['clip_embeds'].shape  # doctest: +SKIP
        (300, 512)
    """

    def __init__(self, store_dir: str) -> None:
        self.store_dir = store_dir
        self._store: Optional[ProposalEmbedStore] = None

    @property
    def store(self) -> ProposalEmbedStore:
        """ProposalEmbedStore: The store, opened on first access."""
        if self._store is None:
            self._store = ProposalEmbedStore(self.store_dir)
        return self._store

    def transform(self, results: dict) -> dict:
        img_id = results.get('img_id')
        if img_id is None:
            raise KeyError(
                f'{type(self).__name__} needs results["img_id"] (image '
                f'{results.get("img_path", "?")}) to look up the store '
                f'{self.store_dir}.')
        try:
            boxes, embeds = self.store.get(img_id)
        except KeyError as e:
            raise KeyError(
                f'Image {img_id} ({results.get("img_path", "?")}) is not in '
                f'the proposal-embedding store {self.store_dir}; precompute '
                'the store on this training set.') from e
        results['clip_proposals'] = boxes
        results['clip_embeds'] = embeds
        results['clip_teacher'] = self.store.teacher
        return results

    def __getstate__(self) -> dict:
        # Workers open their own store (its file handles do not pickle).
        state = self.__dict__.copy()
        state['_store'] = None
        return state

    def __repr__(self) -> str:
        return f'{type(self).__name__}(store_dir={self.store_dir!r})'


@TRANSFORMS.register_module()
class PackViLDInputs(PackDetInputs):
    """``PackDetInputs`` that also packs the CLIP proposal embeddings.

    When ``clip_proposals`` and ``clip_embeds`` are in the results (see
    :class:`LoadCLIPProposalEmbeds`), the data sample gets
    ``clip_proposals = InstanceData(bboxes=(M', 4), embeds=(M', D))`` float32
    tensors; without them it packs exactly as ``PackDetInputs`` (text-only
    ViLD).

    The proposals come in original-image pixels. If the pipeline recorded a
    ``homography_matrix`` (mmdet's geometric transforms do), they are mapped
    into the network input with it here: corners through the matrix, the
    enclosing box, clipped to ``img_shape``. The packed ``clip_proposals``
    then carry ``metainfo['frame'] == 'input'``. Without a recorded matrix
    they stay in original pixels (``frame == 'original'``) and
    :class:`~mmovl.models.ViLDRoIHead` maps them with the ``scale_factor`` /
    ``flip`` metainfo. ``metainfo['teacher']`` is the store's teacher record
    (``clip_teacher``), when the results have one.

    Which mapped proposals keep their (whole crop's) embedding:

    - ``min_visible=None`` (default, the authors' code): every one, clipped
      to the image; one that a crop cut away entirely becomes a zero-area
      box on the border and still counts, as in the authors' loss, which
      only skips rows whose coordinates are all <= 0 (their padding). Such
      a box is dropped here only in that same case.
    - ``min_visible=f``: only those with at least ``f`` of their mapped area
      left inside the image (``0`` keeps every non-empty clipped box).

    Args:
        min_visible (float, optional): See above, in [0, 1]. Defaults to
            None.
        meta_keys (Sequence[str]): As in ``PackDetInputs``. Defaults to
            ``('img_id', 'img_path', 'ori_shape', 'img_shape',
            'scale_factor', 'flip', 'flip_direction')``.

    Examples:
        >>> import numpy as np
        >>> pack = PackViLDInputs()
        >>> out = pack(dict(img=np.zeros((8, 8, 3), np.uint8), img_id=1,
        ...                 clip_proposals=np.zeros((2, 4), np.float32),
        ...                 clip_embeds=np.ones((2, 3), np.float32)))
        >>> out['data_samples'].clip_proposals.embeds.shape
        torch.Size([2, 3])
    """

    def __init__(self, min_visible: Optional[float] = None,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        if min_visible is not None and not 0 <= min_visible <= 1:
            raise ValueError(
                f'min_visible must be in [0, 1], got {min_visible}.')
        self.min_visible = min_visible

    def map_proposals(self, boxes: np.ndarray, homography: np.ndarray,
                      img_shape) -> np.ndarray:
        """Boxes through a 3 x 3 homography, clipped to ``img_shape``.

        Args:
            boxes (np.ndarray): (M, 4) xyxy boxes, original pixels.
            homography (np.ndarray): (3, 3) matrix, original -> input.
            img_shape (tuple): (h, w) of the input.

        Returns:
            tuple: The (M, 4) mapped, clipped boxes and the (M, ) boolean
            mask of those that stay (see ``min_visible``).
        """
        x1, y1, x2, y2 = boxes.T.astype(np.float64)
        corners = np.stack([
            np.stack([x1, x2, x1, x2]),
            np.stack([y1, y1, y2, y2]),
            np.ones((4, len(boxes)))
        ])  # (3, 4, M)
        mapped = np.einsum('ij,jkm->ikm', np.asarray(homography, np.float64),
                           corners)
        xs, ys = mapped[0] / mapped[2], mapped[1] / mapped[2]
        full = np.stack([xs.min(0), ys.min(0), xs.max(0), ys.max(0)], 1)
        h, w = img_shape[:2]
        clipped = full.clip(0, [w, h, w, h])

        def area(b):
            return (b[:, 2] - b[:, 0]).clip(0) * (b[:, 3] - b[:, 1]).clip(0)

        if self.min_visible is None:  # the authors' validity test
            return clipped.astype(np.float32), clipped.max(1) > 0
        keep = ((clipped[:, 2] > clipped[:, 0]) &
                (clipped[:, 3] > clipped[:, 1]))
        keep &= area(clipped) >= self.min_visible * area(full)
        return clipped.astype(np.float32), keep

    def transform(self, results: dict) -> dict:
        packed = super().transform(results)
        has_boxes, has_embeds = ('clip_proposals' in results,
                                 'clip_embeds' in results)
        if has_boxes != has_embeds:
            raise KeyError('clip_proposals and clip_embeds come together; '
                           f'got only {"boxes" if has_boxes else "embeds"} '
                           f'for image {results.get("img_id")}.')
        if has_boxes:
            boxes = np.asarray(results['clip_proposals'], np.float32)
            embeds = np.asarray(results['clip_embeds'], np.float32)
            if boxes.ndim != 2 or boxes.shape[1] != 4 or embeds.ndim != 2 \
                    or len(embeds) != len(boxes):
                raise ValueError(
                    f'Image {results.get("img_id")}: clip_proposals '
                    f'{boxes.shape} and clip_embeds {embeds.shape} must be '
                    '(M, 4) and (M, D).')
            frame = 'original'
            homography = results.get('homography_matrix')
            if homography is not None:
                bad = (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])
                if bad.any():
                    raise ValueError(
                        f'Image {results.get("img_id")}: clip_proposals must '
                        'be xyxy boxes with x2 >= x1 and y2 >= y1; got '
                        f'{boxes[bad][:3].tolist()}.')
                boxes, keep = self.map_proposals(boxes, homography,
                                                 results['img_shape'])
                boxes, embeds = boxes[keep], embeds[keep]
                frame = 'input'
            metainfo = dict(frame=frame)
            if 'clip_teacher' in results:
                metainfo['teacher'] = results['clip_teacher']
            packed['data_samples'].clip_proposals = InstanceData(
                metainfo=metainfo,
                bboxes=torch.tensor(boxes),
                embeds=torch.tensor(embeds))
        return packed

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(min_visible={self.min_visible}, '
                f'meta_keys={self.meta_keys})')
