# Copyright (c) mmovl contributors. All rights reserved.
"""Draw a data set's samples as the model sees them, with their labels.

    python tools/analysis_tools/browse_dataset.py \\
        configs/mkt/mkt_toy_vit_p8_10e_toy.py --phase val \\
        --output-dir work_dirs/browse --max-samples 20

Samples go through the config's pipeline of ``--phase`` (augmentations
included). Classification data sets (mmovl's, in mmpretrain's registry) are
drawn by mmpretrain's ``UniversalVisualizer`` with their label names;
detection data sets (mmdet's ``CocoDataset``, ``LVISV1Dataset``... in an
mmdet config) by mmdet's ``DetLocalVisualizer`` with boxes and names.
"""
import argparse
import os
import os.path as osp

import mmcv
import numpy as np
from mmengine.config import Config, DictAction
from mmengine.registry import init_default_scope

import mmovl  # noqa: F401  (registers mmovl's data sets)
from mmovl.utils import atomic_write
from mmovl.utils.progress import Progress


def parse_args():
    parser = argparse.ArgumentParser(
        description='Draw samples of a data set with their labels or boxes')
    parser.add_argument('config', help='config file')
    parser.add_argument('--phase', default='train',
                        choices=['train', 'val', 'test'],
                        help='whose data loader to browse')
    parser.add_argument('--output-dir', help='write one picture per sample '
                        'here')
    parser.add_argument('--max-samples', type=int, default=None,
                        help='the first N samples (default: all)')
    parser.add_argument('--resize', type=int, default=256,
                        help='short edge of the pictures, so that labels are '
                        'legible on small images; 0 keeps the size')
    parser.add_argument('--show', action='store_true',
                        help='show each picture in a window')
    parser.add_argument('--show-interval', type=float, default=2,
                        help='seconds each shown picture stays')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value')
    return parser.parse_args()


def build_dataset(cfg: Config, phase: str):
    """The data set of ``<phase>_dataloader``, from the registry of the
    config's scope (mmdet for detection configs, else mmpretrain)."""
    key = f'{phase}_dataloader'
    if key not in cfg or 'dataset' not in cfg[key]:
        raise ValueError(f'{cfg.filename} has no {key}.dataset to browse')
    scope = cfg.get('default_scope', 'mmpretrain')
    init_default_scope(scope)
    if scope == 'mmdet':
        from mmdet.registry import DATASETS
    else:
        from mmpretrain.registry import DATASETS
    return DATASETS.build(cfg[key].dataset)


def _rescale(image: np.ndarray, short_edge: int):
    """The image with its short edge at ``short_edge``, and the factors."""
    h, w = image.shape[:2]
    size = (short_edge, short_edge * h // w) if w < h else \
        (short_edge * w // h, short_edge)
    return mmcv.imresize(image, size), (size[0] / w, size[1] / h)


def draw_detection(visualizer, image, sample, resize):
    """Boxes (and masks) with names of ``gt_instances`` (mmdet's
    visualizer)."""
    from mmdet.models.utils import mask2ndarray
    from mmdet.structures.bbox import BaseBoxes

    sample = sample.numpy()
    gt = sample.gt_instances
    if isinstance(gt.get('bboxes'), BaseBoxes):
        gt.bboxes = gt.bboxes.tensor.numpy()
    masks = gt.get('masks')
    if masks is not None:
        masks = mask2ndarray(masks).astype(np.uint8)
    if resize:
        image, (sx, sy) = _rescale(image, resize)
        size = image.shape[1::-1]
        if gt.get('bboxes') is not None:
            gt.bboxes = gt.bboxes * np.array([sx, sy, sx, sy],
                                             dtype=np.float32)
        if masks is not None:
            masks = np.stack([
                mmcv.imresize(m, size, interpolation='nearest')
                for m in masks
            ]) if len(masks) else np.zeros((0, *size[::-1]), np.uint8)
    if masks is not None:
        gt.masks = masks.astype(bool)
    sample.gt_instances = gt
    visualizer.add_datasample('sample', image, sample, draw_pred=False)
    return visualizer.get_image()


def draw_classification(visualizer, image, sample, resize, classes):
    """The label names of ``gt_label`` (mmpretrain's visualizer)."""
    return visualizer.visualize_cls(
        image, sample, classes=classes, draw_gt=True, draw_pred=False,
        resize=resize or None)


def main():
    args = parse_args()
    if not args.output_dir and not args.show:
        raise SystemExit('Nothing to do: pass --output-dir and / or --show.')
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    dataset = build_dataset(cfg, args.phase)
    total = len(dataset) if args.max_samples is None else \
        min(args.max_samples, len(dataset))
    if total == 0:
        raise SystemExit(f'The {args.phase} data set of {args.config} is '
                         'empty.')
    if args.output_dir:
        os.makedirs(args.output_dir, exist_ok=True)

    det_vis = cls_vis = None
    classes = dataset.metainfo.get('classes')
    progress = Progress(total, 'samples')
    for i in range(total):
        item = dataset[i]
        sample = item['data_samples']
        image = item['inputs'].permute(1, 2, 0).numpy()[..., ::-1]  # RGB
        image = np.ascontiguousarray(image)
        if 'gt_instances' in sample:
            if det_vis is None:
                from mmdet.visualization import DetLocalVisualizer
                det_vis = DetLocalVisualizer(name='mmovl_browse_det')
                det_vis.dataset_meta = dataset.metainfo
            drawn = draw_detection(det_vis, image, sample, args.resize)
            vis = det_vis
        else:
            if cls_vis is None:
                from mmpretrain.visualization import UniversalVisualizer
                cls_vis = UniversalVisualizer(name='mmovl_browse_cls')
            drawn = draw_classification(cls_vis, image, sample, args.resize,
                                        classes)
            vis = cls_vis
        name = osp.basename(sample.get('img_path', f'{i:06d}.png'))
        if not osp.splitext(name)[1]:  # mmcv picks the encoder from it
            name += '.png'
        if args.show:
            vis.show(drawn, win_name=name, wait_time=args.show_interval)
        if args.output_dir:
            atomic_write(osp.join(args.output_dir, name),
                         lambda tmp: mmcv.imwrite(drawn[..., ::-1], tmp))
        progress.update()
    progress.close()


if __name__ == '__main__':
    main()
