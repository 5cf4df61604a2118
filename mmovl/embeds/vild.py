# Copyright (c) mmovl contributors. All rights reserved.
"""ViLD's offline teacher targets: CLIP embeddings of region proposals.

For every training image a class-agnostic proposal model (an mmdet RPN, or
the RPN of a two-stage detector) gives its top ``M`` boxes after NMS. Each
box is cropped from the original image at 1x and 1.5x its size (clipped to
the image), resized to the CLIP input size and encoded by the teacher; the
two L2-normalised embeddings are summed and normalised again (ViLD,
arXiv 2104.13921, Sec. 3.3). Boxes and embeddings are written to a sharded
store (:mod:`mmovl.embeds.proposal_store`) keyed by image id.
"""
import copy
import hashlib
import json
import math
import os.path as osp
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple, Union

import mmcv
import numpy as np
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.logging import MMLogger
from torch.utils.data import DataLoader, Dataset

from mmovl.utils.progress import Progress
from .label_cache import sha256_file
from .proposal_store import (ProposalEmbedStoreError, make_store_index,
                             read_store_index, remove_stale_tmp_files,
                             shard_is_complete, write_shard,
                             write_store_index)

__all__ = [
    'crop_region', 'crop_proposals', 'encode_proposal_crops',
    'build_proposal_model', 'build_proposal_dataset', 'predict_proposals',
    'VildEmbedsPlan', 'plan_vild_embeds', 'check_vild_store',
    'pending_vild_shards', 'run_vild_embeds', 'precompute_vild_embeds'
]


def crop_region(box: Sequence[float], scale: float, height: int,
                width: int) -> Tuple[int, int, int, int]:
    """The pixel region of ``box`` scaled about its centre, in the image.

    Box coordinates are continuous (pixel ``i`` spans ``[i, i + 1)``); the
    region is every pixel the scaled box touches, clipped to the image and
    at least one pixel wide and high.

    Args:
        box (Sequence[float]): ``(x1, y1, x2, y2)`` in pixels.
        scale (float): Side multiplier, e.g. 1.5.
        height (int): Image height.
        width (int): Image width.

    Returns:
        tuple[int, int, int, int]: ``(left, top, right, bottom)``, to slice
        ``image[top:bottom, left:right]``.

    Examples:
        >>> crop_region((10.2, 20.5, 30.0, 40.0), 1.5, 64, 64)
        (5, 15, 35, 45)
    """
    x1, y1, x2, y2 = (float(v) for v in box)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    half_w, half_h = (x2 - x1) * scale / 2, (y2 - y1) * scale / 2
    left = min(max(math.floor(cx - half_w), 0), width - 1)
    top = min(max(math.floor(cy - half_h), 0), height - 1)
    right = max(min(math.ceil(cx + half_w), width), left + 1)
    bottom = max(min(math.ceil(cy + half_h), height), top + 1)
    return left, top, right, bottom


def crop_proposals(image: np.ndarray, boxes: np.ndarray,
                   scales: Sequence[float],
                   size: Tuple[int, int]) -> np.ndarray:
    """Crops of every box at every scale, resized to ``size``.

    Shrinking uses area interpolation (no aliasing), enlarging bicubic.

    Args:
        image (np.ndarray): (H, W, 3) uint8 image.
        boxes (np.ndarray): (N, 4) xyxy boxes in its pixels.
        scales (Sequence[float]): Crop scales, e.g. ``(1.0, 1.5)``.
        size (tuple[int, int]): ``(height, width)`` of the crops.

    Returns:
        np.ndarray: (len(scales), N, height, width, 3) uint8 crops.
    """
    height, width = image.shape[:2]
    out_h, out_w = size
    crops = np.empty((len(scales), len(boxes), out_h, out_w, 3), np.uint8)
    for s, scale in enumerate(scales):
        for n, box in enumerate(boxes):
            left, top, right, bottom = crop_region(box, scale, height, width)
            patch = image[top:bottom, left:right]
            shrink = patch.shape[0] >= out_h and patch.shape[1] >= out_w
            crops[s, n] = mmcv.imresize(
                patch, (out_w, out_h),
                interpolation='area' if shrink else 'bicubic')
    return crops


@torch.no_grad()
def encode_proposal_crops(teacher,
                          image: np.ndarray,
                          boxes: np.ndarray,
                          scales: Sequence[float] = (1.0, 1.5),
                          batch_size: int = 256) -> torch.Tensor:
    """ViLD's teacher embedding of each box: the L2-normalised sum of the
    normalised CLIP embeddings of its crops at ``scales``.

    Args:
        teacher (CLIPTeacher): The CLIP teacher.
        image (np.ndarray): (H, W, 3) uint8 RGB image.
        boxes (np.ndarray): (N, 4) xyxy boxes in its pixels.
        scales (Sequence[float]): Crop scales. Defaults to ``(1.0, 1.5)``.
        batch_size (int): Crops per teacher call. Defaults to 256.

    Returns:
        torch.Tensor: (N, D) float32 unit-norm embeddings on the CPU.
    """
    if teacher.image_size is None:
        raise ValueError(f'{teacher.model_name} does not declare its input '
                         'size; cannot resize proposal crops for it.')
    if len(boxes) == 0:
        return torch.zeros(0, teacher.embed_dim)
    crops = crop_proposals(image, boxes, scales, teacher.image_size)
    crops = torch.from_numpy(crops).flatten(0, 1).permute(0, 3, 1, 2)
    mean = torch.tensor(teacher.mean).view(1, 3, 1, 1)
    std = torch.tensor(teacher.std).view(1, 3, 1, 1)
    feats = []
    for start in range(0, len(crops), batch_size):
        batch = (crops[start:start + batch_size].float() / 255 - mean) / std
        feats.append(teacher.encode_image(batch).cpu())
    feats = torch.cat(feats).view(len(scales), len(boxes), -1)
    return F.normalize(feats.sum(0), dim=-1)


def _sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode('utf-8')).hexdigest()


def _config_digest(cfg: Config) -> str:
    """What identifies a model config (class objects of pure-Python configs
    serialise by their repr, which names the class)."""
    return _sha256_text(
        json.dumps(cfg.model.to_dict(), sort_keys=True, default=str))


def build_proposal_model(config: Union[str, Config],
                         checkpoint: Optional[str] = None,
                         num_proposals: int = 300,
                         device: str = 'cpu',
                         cfg_options: Optional[dict] = None):
    """Build an mmdet proposal model and load its weights.

    The RPN's ``test_cfg`` is set to keep ``num_proposals`` boxes after NMS.
    Backbone ``init_cfg`` (pretrained downloads) is never run.

    Args:
        config (str | Config): An mmdet config (file or object) of an RPN or
            a two-stage detector; its ``test_dataloader`` gives the test
            pipeline.
        checkpoint (str, optional): Weights, ``.safetensors`` or an
            mmengine checkpoint. Defaults to None (random weights; tests
            only).
        num_proposals (int): Boxes per image after NMS. Defaults to 300.
        device (str): Where to run it. Defaults to ``'cpu'``.
        cfg_options (dict, optional): Overrides merged into the config.
            Defaults to None.

    Returns:
        nn.Module: The model in eval mode, with ``model.cfg`` and
        ``model.proposal_settings`` (what identifies it in a store).
    """
    from mmdet.registry import MODELS
    from mmengine.model.utils import revert_sync_batchnorm
    from mmengine.registry import init_default_scope

    cfg = Config.fromfile(config) if isinstance(config, str) else \
        copy.deepcopy(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    test_cfg = cfg.model.get('test_cfg') or {}
    if 'rpn' in test_cfg:
        rpn_cfg = test_cfg['rpn']
        rpn_cfg['max_per_img'] = num_proposals
        rpn_cfg['nms_pre'] = max(rpn_cfg.get('nms_pre', 0), num_proposals)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    model = revert_sync_batchnorm(MODELS.build(cfg.model))
    weights = 'random'
    if checkpoint is not None:
        if not osp.isfile(checkpoint):
            raise FileNotFoundError(
                f'Proposal model checkpoint not found: {checkpoint}')
        if checkpoint.endswith('.safetensors'):
            from safetensors.torch import load_file
            try:
                state_dict = load_file(checkpoint)
                model.load_state_dict(state_dict, strict=True)
            except Exception as e:
                raise ValueError(f'Cannot load proposal model weights from '
                                 f'{checkpoint}: {e}') from e
        else:
            from mmengine.runner import load_checkpoint

            from mmovl.utils.checkpoint import scoped_safe_checkpoint_loading

            # mmengine's checkpoint (with its message hub), weights-only.
            with scoped_safe_checkpoint_loading():
                load_checkpoint(model, checkpoint, map_location='cpu',
                                strict=True)
        weights = f'sha256:{sha256_file(checkpoint)}'
    model.cfg = cfg
    model.proposal_settings = dict(
        model_config=_config_digest(cfg), weights=weights)
    return model.to(device).eval()


def build_proposal_dataset(model_cfg: Config,
                           dataset_cfg: Optional[dict] = None,
                           ann_file: Optional[str] = None,
                           img_dir: str = '',
                           data_root: str = ''):
    """The images to run over, with the proposal model's test pipeline.

    Every image of the annotation file is kept (``test_mode=True``), so the
    store covers any filtering the training set applies later.

    Args:
        model_cfg (Config): The proposal model's config (for its test
            pipeline).
        dataset_cfg (dict, optional): An mmdet dataset config, e.g. a
            training config's ``train_dataloader.dataset``; wrappers such as
            ``ClassBalancedDataset`` are unwrapped. Defaults to None.
        ann_file (str, optional): Instead of ``dataset_cfg``, a COCO-format
            json. Defaults to None.
        img_dir (str): Image folder of ``ann_file``. Defaults to ''.
        data_root (str): Root of ``ann_file`` and ``img_dir``. Defaults to
            ''.

    Returns:
        BaseDetDataset: The dataset.
    """
    from mmdet.registry import DATASETS
    from mmdet.utils import get_test_pipeline_cfg
    from mmengine.registry import init_default_scope

    try:
        pipeline = get_test_pipeline_cfg(model_cfg)
    except (AttributeError, KeyError, RuntimeError) as e:
        raise ValueError('The proposal model config needs '
                         'test_dataloader.dataset.pipeline (its test '
                         f'pipeline): {e}') from e
    if (dataset_cfg is None) == (ann_file is None):
        raise ValueError('Give exactly one of dataset_cfg and ann_file.')
    if dataset_cfg is None:
        dataset_cfg = dict(type='CocoDataset', data_root=data_root,
                           ann_file=ann_file, data_prefix=dict(img=img_dir))
    dataset_cfg = copy.deepcopy(dataset_cfg)
    while 'dataset' in dataset_cfg and 'ann_file' not in dataset_cfg:
        dataset_cfg = dataset_cfg['dataset']
    dataset_cfg.update(pipeline=pipeline, test_mode=True, lazy_init=False)
    dataset_cfg.pop('filter_cfg', None)
    init_default_scope('mmdet')
    return DATASETS.build(dataset_cfg)


@torch.no_grad()
def predict_proposals(model,
                      data_batch: dict,
                      num_proposals: int = 300,
                      min_size: float = 1.0,
                      nms_iou: Optional[float] = None) -> List[np.ndarray]:
    """Top class-agnostic boxes per image, in original-image pixels.

    A two-stage detector gives its RPN's proposals; any other detector
    (e.g. mmdet's ``RPN``) its ``predict`` boxes. Boxes are clipped to the
    image, those narrower or lower than ``min_size`` dropped, optionally
    suppressed once more class-agnostically, and the ``num_proposals``
    highest-scoring kept.

    Args:
        model (nn.Module): The proposal model.
        data_batch (dict): A collated batch of its test pipeline.
        num_proposals (int): Boxes kept per image. Defaults to 300.
        min_size (float): Smallest side kept, in pixels. Defaults to 1.0.
        nms_iou (float, optional): IoU of an extra class-agnostic NMS (for a
            class-aware detector). Defaults to None (none).

    Returns:
        list[np.ndarray]: Per image, (M, 4) float32 boxes, best first.
    """
    from mmdet.structures.bbox import get_box_tensor
    from torchvision.ops import nms

    data = model.data_preprocessor(data_batch, False)
    inputs, samples = data['inputs'], data['data_samples']
    if getattr(model, 'with_rpn', False):
        feats = model.extract_feat(inputs)
        results = model.rpn_head.predict(feats, samples, rescale=True)
    else:
        results = [
            s.pred_instances
            for s in model.predict(inputs, samples, rescale=True)
        ]
    out = []
    for res, sample in zip(results, samples):
        height, width = sample.ori_shape[:2]
        boxes = get_box_tensor(res.bboxes).float().clone()
        scores = res.scores.float()
        boxes[:, 0::2] = boxes[:, 0::2].clamp(0, width)
        boxes[:, 1::2] = boxes[:, 1::2].clamp(0, height)
        keep = ((boxes[:, 2] - boxes[:, 0]) >= min_size) & (
            (boxes[:, 3] - boxes[:, 1]) >= min_size)
        boxes, scores = boxes[keep], scores[keep]
        if nms_iou is not None and len(boxes):
            keep = nms(boxes, scores, nms_iou)
            boxes, scores = boxes[keep], scores[keep]
        order = torch.sort(scores, descending=True, stable=True)[1]
        out.append(boxes[order[:num_proposals]].cpu().numpy())
    return out


class _ImagesWithOriginals(Dataset):
    """The proposal model's inputs, plus each original image as RGB."""

    def __init__(self, dataset) -> None:
        self.dataset = dataset
        self.backend_args = getattr(dataset, 'backend_args', None)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, idx: int) -> dict:
        from mmengine import fileio
        path = self.dataset.get_data_info(idx)['img_path']
        image = mmcv.imfrombytes(
            fileio.get(path, backend_args=self.backend_args),
            flag='color', channel_order='rgb')
        if image is None:
            raise ValueError(f'Cannot decode image {path}.')
        return dict(packed=self.dataset[idx], image=image)


def _collate(items: List[dict]) -> dict:
    return dict(
        packed=pseudo_collate([it['packed'] for it in items]),
        images=[it['image'] for it in items])


def _dataset_img_ids(dataset) -> List[int]:
    img_ids = []
    for i in range(len(dataset)):
        img_id = dataset.get_data_info(i).get('img_id')
        if isinstance(img_id, bool) or not isinstance(img_id,
                                                      (int, np.integer)):
            raise ValueError(
                f'Image {i} of the data set has img_id {img_id!r}; the store '
                'is keyed by integer image ids.')
        img_ids.append(int(img_id))
    if len(set(img_ids)) != len(img_ids):
        raise ValueError('The data set has duplicate image ids.')
    return img_ids


def _check_part(part: int, num_parts: int) -> None:
    if not 0 <= part < num_parts:
        raise ValueError(f'part must be in [0, {num_parts}), got {part}.')


@dataclass(frozen=True)
class VildEmbedsPlan:
    """What a run of :func:`precompute_vild_embeds` computes, and where.

    Made by :func:`plan_vild_embeds`; nothing in it is read from the store.

    Attributes:
        out_dir (str): The store folder.
        img_ids (list[int]): The data set's image ids, in its order; shard
            ``i`` holds the images at positions ``[i * shard_size,
            (i + 1) * shard_size)``.
        settings (dict): What the embeddings depend on (proposal model and
            selection, teacher, crop scales, dtype, image ids), recorded in
            the store's index; its hash marks every shard.
        index (dict): The store index (:func:`make_store_index`).
        num_proposals (int): Boxes per image.
        scales (tuple[float]): Crop scales.
        min_size (float): Smallest box side kept.
        nms_iou (float, optional): Extra class-agnostic NMS IoU.
        dtype (str): Stored embedding dtype.
    """
    out_dir: str
    img_ids: List[int]
    settings: dict
    index: dict
    num_proposals: int
    scales: Tuple[float, ...]
    min_size: float
    nms_iou: Optional[float]
    dtype: str

    @property
    def shard_size(self) -> int:
        return self.index['shard_size']

    @property
    def num_shards(self) -> int:
        return self.index['num_shards']

    @property
    def run_hash(self) -> str:
        """The settings hash every shard of this run carries."""
        return self.index['settings_hash']

    def shard_path(self, shard: int) -> str:
        return osp.join(self.out_dir, self.index['shards'][shard])

    def shard_range(self, shard: int) -> range:
        """The data set positions of shard ``shard``'s images."""
        return range(shard * self.shard_size,
                     min((shard + 1) * self.shard_size, len(self.img_ids)))

    def shard_img_ids(self, shard: int) -> List[int]:
        """The image ids shard ``shard`` holds, in order."""
        positions = self.shard_range(shard)
        return self.img_ids[positions.start:positions.stop]


def plan_vild_embeds(model,
                     teacher,
                     dataset,
                     out_dir: str,
                     num_proposals: int = 300,
                     scales: Sequence[float] = (1.0, 1.5),
                     shard_size: int = 1000,
                     min_size: float = 1.0,
                     nms_iou: Optional[float] = None,
                     dtype: str = 'float16') -> VildEmbedsPlan:
    """What to compute: the images, the proposal and teacher settings and
    the store's layout (arguments as :func:`precompute_vild_embeds`).

    Returns:
        VildEmbedsPlan: The plan.
    """
    img_ids = _dataset_img_ids(dataset)
    if not img_ids:
        raise ValueError('The data set has no images.')
    settings = dict(
        proposals=dict(getattr(model, 'proposal_settings', {}),
                       num_proposals=num_proposals, min_size=min_size,
                       nms_iou=nms_iou),
        teacher=dict(model_name=teacher.model_name,
                     weights=teacher.weights_id,
                     image_size=list(teacher.image_size or ()),
                     mean=list(teacher.mean), std=list(teacher.std)),
        scales=[float(s) for s in scales],
        dtype=dtype,
        img_ids=_sha256_text(json.dumps(img_ids)))
    index = make_store_index(settings, len(img_ids), shard_size,
                             teacher.embed_dim)
    return VildEmbedsPlan(
        out_dir=out_dir, img_ids=img_ids, settings=settings, index=index,
        num_proposals=num_proposals, scales=tuple(scales),
        min_size=min_size, nms_iou=nms_iou, dtype=dtype)


def check_vild_store(plan: VildEmbedsPlan) -> None:
    """Make ``plan.out_dir`` a store of ``plan``: refuse one made with other
    settings (never overwritten), write the index of a new one, and remove
    the temporary files of an interrupted run.

    Raises:
        ProposalEmbedStoreError: If the folder holds a store of other
            settings or shard size, naming what differs.
    """
    logger = MMLogger.get_current_instance()
    out_dir, settings, shard_size = (plan.out_dir, plan.settings,
                                     plan.shard_size)
    if osp.isfile(osp.join(out_dir, 'index.json')):
        old = read_store_index(out_dir)
        if old['settings_hash'] != plan.run_hash or \
                old['shard_size'] != shard_size:
            diff = sorted(
                k for k in set(old.get('settings', {})) | set(settings)
                if old.get('settings', {}).get(k) != settings.get(k))
            if old['shard_size'] != shard_size:
                diff.append('shard_size')
            raise ProposalEmbedStoreError(
                f'{out_dir} holds a store made with other settings '
                f'(differing: {diff}); pick another output folder, or '
                'delete it to start over.')
    else:
        write_store_index(out_dir, plan.index)
    for path in remove_stale_tmp_files(out_dir):
        logger.info(f'Removed {path}, left by an interrupted run.')


def pending_vild_shards(plan: VildEmbedsPlan,
                        part: int = 0,
                        num_parts: int = 1,
                        max_shards: Optional[int] = None
                        ) -> Tuple[List[int], int]:
    """The shards of part ``part`` still to compute (missing, or not a
    complete shard of this plan), and how many of its shards are complete.

    Args:
        plan (VildEmbedsPlan): The plan, its store checked
            (:func:`check_vild_store`).
        part (int): Shards with ``index % num_parts == part``. Defaults
            to 0.
        num_parts (int): Defaults to 1.
        max_shards (int, optional): At most this many pending shards.
            Defaults to None.

    Returns:
        tuple[list[int], int]: The pending shards, in order, and the
        number of complete ones.
    """
    _check_part(part, num_parts)
    logger = MMLogger.get_current_instance()
    pending, skipped = [], 0
    for shard in range(plan.num_shards):
        if shard % num_parts != part:
            continue
        path = plan.shard_path(shard)
        reason = shard_is_complete(path, plan.run_hash, shard,
                                   plan.shard_img_ids(shard))
        if reason is None:
            skipped += 1
            continue
        if reason != 'missing':
            logger.warning(f'Recomputing shard {path}: {reason}')
        pending.append(shard)
    if max_shards is not None:
        pending = pending[:max_shards]
    return pending, skipped


def run_vild_embeds(plan: VildEmbedsPlan,
                    model,
                    teacher,
                    dataset,
                    shards: Sequence[int],
                    batch_size: int = 4,
                    num_workers: int = 2,
                    clip_batch_size: int = 256,
                    progress: bool = True) -> None:
    """Compute ``shards`` of ``plan`` and write each, atomically, once all
    its images are done.

    Args:
        plan (VildEmbedsPlan): The plan, its store checked
            (:func:`check_vild_store`).
        model (nn.Module): The proposal model the plan was made with.
        teacher (CLIPTeacher): The teacher the plan was made with; moved to
            the proposal model's device.
        dataset: The plan's images with the model's test pipeline.
        shards (Sequence[int]): The shards to compute
            (:func:`pending_vild_shards`).
        batch_size (int): Images per proposal-model call. Defaults to 4.
        num_workers (int): Data-loading workers. Defaults to 2.
        clip_batch_size (int): Crops per teacher call. Defaults to 256.
        progress (bool): Show the progress (a bar on a terminal, a few
            lines otherwise). Defaults to True.
    """
    batches, batch_shard = [], []
    for shard in shards:
        positions = plan.shard_range(shard)
        for start in range(positions.start, positions.stop, batch_size):
            batches.append(
                list(range(start, min(start + batch_size, positions.stop))))
            batch_shard.append(shard)
    loader = DataLoader(
        _ImagesWithOriginals(dataset), batch_sampler=batches,
        num_workers=num_workers, collate_fn=_collate)
    bar = Progress(sum(map(len, batches)), 'proposal embeddings (images)') \
        if progress and batches else None
    device = next(model.parameters()).device
    teacher.to(device)
    acc_boxes: List[np.ndarray] = []
    acc_embeds: List[np.ndarray] = []
    for b, batch in enumerate(loader):
        shard = batch_shard[b]
        boxes_list = predict_proposals(model, batch['packed'],
                                       plan.num_proposals, plan.min_size,
                                       plan.nms_iou)
        for image, boxes in zip(batch['images'], boxes_list):
            acc_boxes.append(boxes)
            acc_embeds.append(
                encode_proposal_crops(teacher, image, boxes, plan.scales,
                                      clip_batch_size).numpy())
        if bar is not None:
            bar.update(len(boxes_list))
        if b + 1 == len(batches) or batch_shard[b + 1] != shard:
            img_ids = plan.shard_img_ids(shard)
            # Batches never straddle shards, so this is the whole shard.
            assert len(acc_boxes) == len(img_ids)
            write_shard(plan.shard_path(shard), img_ids, acc_boxes,
                        acc_embeds, plan.run_hash, shard, plan.dtype)
            acc_boxes, acc_embeds = [], []
    if bar is not None:
        bar.close()


def precompute_vild_embeds(model,
                           teacher,
                           dataset,
                           out_dir: str,
                           num_proposals: int = 300,
                           scales: Sequence[float] = (1.0, 1.5),
                           shard_size: int = 1000,
                           batch_size: int = 4,
                           num_workers: int = 2,
                           clip_batch_size: int = 256,
                           min_size: float = 1.0,
                           nms_iou: Optional[float] = None,
                           dtype: str = 'float16',
                           max_shards: Optional[int] = None,
                           part: int = 0,
                           num_parts: int = 1,
                           progress: bool = True) -> Dict[str, int]:
    """Write the ViLD proposal-embedding store of ``dataset`` (resumable).

    Shards already complete with the same settings are skipped; others are
    computed, each written atomically once all its images are done. A store
    in ``out_dir`` made with other settings is an error, never overwritten.
    The steps are public: :func:`plan_vild_embeds` (what to compute),
    :func:`check_vild_store` and :func:`pending_vild_shards` (what the
    store already holds) and :func:`run_vild_embeds` (compute and write).

    Args:
        model (nn.Module): Proposal model (:func:`build_proposal_model`).
        teacher (CLIPTeacher): The CLIP teacher.
        dataset: Images with the model's test pipeline
            (:func:`build_proposal_dataset`).
        out_dir (str): The store folder.
        num_proposals (int): Boxes per image. Defaults to 300.
        scales (Sequence[float]): Crop scales. Defaults to ``(1.0, 1.5)``.
        shard_size (int): Images per shard. Defaults to 1000.
        batch_size (int): Images per proposal-model call. Defaults to 4.
        num_workers (int): Data-loading workers. Defaults to 2.
        clip_batch_size (int): Crops per teacher call. Defaults to 256.
        min_size (float): Smallest box side kept. Defaults to 1.0.
        nms_iou (float, optional): Extra class-agnostic NMS IoU. Defaults to
            None.
        dtype (str): Stored embedding dtype, ``'float16'`` or
            ``'float32'``. Defaults to ``'float16'``.
        max_shards (int, optional): Stop after computing this many shards
            (to spread a long run over several jobs). Defaults to None.
        part (int): Which of ``num_parts`` interleaved shard subsets this
            process computes (shards with ``index % num_parts == part``), so
            several processes can fill one store. Defaults to 0.
        num_parts (int): Defaults to 1.
        progress (bool): Show the progress (a bar on a terminal, a few
            lines otherwise). Defaults to True.

    Returns:
        dict: ``num_shards``, ``computed``, ``skipped`` and ``complete``
        (1 if every shard of the store now exists, else 0).
    """
    logger = MMLogger.get_current_instance()
    _check_part(part, num_parts)
    plan = plan_vild_embeds(model, teacher, dataset, out_dir, num_proposals,
                            scales, shard_size, min_size, nms_iou, dtype)
    check_vild_store(plan)
    pending, skipped = pending_vild_shards(plan, part, num_parts,
                                           max_shards)
    logger.info(f'{out_dir}: {plan.num_shards} shards, {skipped} '
                f'complete, computing {len(pending)}.')
    run_vild_embeds(plan, model, teacher, dataset, pending, batch_size,
                    num_workers, clip_batch_size, progress)
    done = sum(
        osp.isfile(plan.shard_path(shard))
        for shard in range(plan.num_shards))
    logger.info(f'{out_dir}: {done} of {plan.num_shards} shards complete.')
    return dict(num_shards=plan.num_shards, computed=len(pending),
                skipped=skipped, complete=int(done == plan.num_shards))
