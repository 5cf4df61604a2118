# Copyright (c) mmovl contributors. All rights reserved.
"""Pipeline steps that feed ViLD its precomputed CLIP proposal embeddings."""
from typing import Optional

import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmdet.datasets.transforms import PackDetInputs
from mmdet.registry import TRANSFORMS
from mmengine.structures import InstanceData

from mmovl.utils.proposal_embed_store import ProposalEmbedStore


@TRANSFORMS.register_module()
class LoadCLIPProposalEmbeds(BaseTransform):
    """Add an image's precomputed proposals and their CLIP embeddings.

    Reads the store written by ``tools/misc/precompute_vild_embeds.py``
    (safetensors shards, opened lazily on first use in each worker) and sets

    - ``clip_proposals``: (M, 4) float32 xyxy boxes in **original-image**
      pixels. Geometric transforms do not touch them: the model maps them to
      its input with the ``scale_factor`` / ``flip`` metainfo, so only
      transforms recorded there (``Resize``, ``RandomFlip``) may follow.
    - ``clip_embeds``: (M, D) float32 L2-normalised embeddings.

    Required keys: ``img_id``. Added keys: ``clip_proposals``,
    ``clip_embeds``.

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
    ``clip_proposals = InstanceData(bboxes=(M, 4), embeds=(M, D))`` float32
    tensors; without them it packs exactly as ``PackDetInputs`` (text-only
    ViLD).

    Args:
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
            packed['data_samples'].clip_proposals = InstanceData(
                bboxes=torch.tensor(boxes),
                embeds=torch.tensor(embeds))
        return packed
