# Copyright (c) mmovl contributors. All rights reserved.
"""Precompute ViLD's CLIP embeddings of region proposals, once, offline.

A class-agnostic proposal model (an mmdet RPN, or a two-stage detector
whose RPN is used) gives the top M boxes of each training image; each box
is cropped at 1x and 1.5x, encoded by the CLIP teacher, and the summed,
normalised embeddings are stored with the boxes in a sharded store keyed by
image id. Training reads it with the ``LoadCLIPProposalEmbeds`` transform.

    python tools/misc/precompute_vild_embeds.py \\
        rpn_config.py rpn.pth \\
        --dataset-config \\
        configs/vild/vild_r50_fpn_32xb8_180k_lvis_v1_base.py \\
        --out data/lvis_v1/vild_embeds/train --num-proposals 300

The teacher (``--clip-model``, ``--clip-checkpoint``) defaults to the
``model.teacher`` of ``--dataset-config`` (the ViLD config that will train
on the store), else of the proposal config: the store records it (name and
SHA-256 of the weights) and ViLD refuses to train on a store of another
teacher.

or, for a plain COCO-format json instead of a dataset config:

        --ann-file data/toy_world/annotations/instances_train.json \\
        --img-dir data/toy_world/train

The proposal model must not have seen novel boxes: ViLD uses an RPN trained
on the base categories, e.g. that of a ViLD-text detector trained first
(pass its config and checkpoint; a two-stage detector's RPN is used).
Ground-truth boxes are deliberately not offered as proposals: the novel
ones would leak novel annotations, the base ones alone give nothing to
distil about novel objects. Cost: two teacher passes per proposal (on
2 CPU cores, the toy CLIP runs about 80 crops/s, so toy runs want
``--num-proposals 50`` or a GPU).

The run is resumable: rerun the same command after an interruption and only
the shards not yet written are computed (``--max-shards`` stops early on
purpose; ``--part i --num-parts n`` lets n processes fill one store).
"""
import argparse
import os.path as osp

import torch
from mmengine.config import Config, DictAction
from mmengine.logging import MMLogger

from mmovl.embeds.vild import (build_proposal_dataset, build_proposal_model,
                               precompute_vild_embeds)
from mmovl.models import CLIPTeacher


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('proposal_config', help='mmdet config of the proposal '
                   'model (an RPN or a two-stage detector)')
    p.add_argument('proposal_checkpoint', help='its weights (.pth of '
                   'mmengine, or .safetensors)')
    data = p.add_mutually_exclusive_group(required=True)
    data.add_argument('--dataset-config', help='a config whose '
                      'train_dataloader.dataset gives the images')
    data.add_argument('--ann-file', help='a COCO-format json instead')
    p.add_argument('--img-dir', default='',
                   help='image folder of --ann-file')
    p.add_argument('--data-root', default='',
                   help='root of --ann-file and --img-dir')
    p.add_argument('--clip-model', default=None,
                   help='open_clip architecture of the teacher (default: '
                   'model.teacher.model_name of --dataset-config, else of '
                   'the proposal config)')
    p.add_argument('--clip-checkpoint', default=None,
                   help='local CLIP weights (default: '
                   'model.teacher.checkpoint, as --clip-model)')
    p.add_argument('--out', required=True, help='the store folder')
    p.add_argument('--num-proposals', type=int, default=300,
                   help='boxes per image after NMS (ViLD: 300)')
    p.add_argument('--scales', type=float, nargs='+', default=[1.0, 1.5],
                   help='crop scales whose embeddings are summed')
    p.add_argument('--shard-size', type=int, default=1000,
                   help='images per shard file')
    p.add_argument('--dtype', choices=['float16', 'float32'],
                   default='float16', help='stored embedding dtype')
    p.add_argument('--min-size', type=float, default=1.0,
                   help='drop boxes with a side shorter than this (pixels)')
    p.add_argument('--nms-iou', type=float, default=None,
                   help='extra class-agnostic NMS, for class-aware models')
    p.add_argument('--batch-size', type=int, default=4,
                   help='images per proposal-model call')
    p.add_argument('--clip-batch-size', type=int, default=256,
                   help='crops per teacher call')
    p.add_argument('--num-workers', type=int, default=2)
    p.add_argument('--max-shards', type=int, default=None,
                   help='stop after computing this many shards')
    p.add_argument('--part', type=int, default=0)
    p.add_argument('--num-parts', type=int, default=1)
    p.add_argument('--device',
                   default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument('--cfg-options', nargs='+', action=DictAction,
                   help='overrides of the proposal model config')
    return p.parse_args(argv)


def config_teacher(*configs):
    """The ``model.teacher`` (model_name, checkpoint) of the first config
    that has one, and that config's path; (None, None, None) if none."""
    for path in configs:
        if not path:
            continue
        teacher = (Config.fromfile(path).get('model') or {}).get('teacher')
        if teacher:
            return (teacher.get('model_name'), teacher.get('checkpoint'),
                    path)
    return None, None, None


def resolve_teacher(args):
    """--clip-model / --clip-checkpoint, defaulting to the configs'."""
    name, ckpt, source = config_teacher(args.dataset_config,
                                        args.proposal_config)
    model_name = args.clip_model or name
    checkpoint = args.clip_checkpoint or ckpt
    if not model_name or not checkpoint:
        raise SystemExit(
            'No CLIP teacher: pass --clip-model and --clip-checkpoint, or a '
            '--dataset-config / proposal config with model.teacher.')
    if source and (model_name, checkpoint) != (name, ckpt):
        MMLogger.get_instance('mmovl').warning(
            f'Teacher {model_name} ({checkpoint}) differs from the config '
            f'{source} ({name}, {ckpt}); a ViLD config with that teacher '
            'will refuse this store.')
    return model_name, checkpoint


def main(argv=None):
    args = parse_args(argv)
    clip_model, clip_checkpoint = resolve_teacher(args)
    logger = MMLogger.get_instance('mmovl')
    model = build_proposal_model(args.proposal_config,
                                 args.proposal_checkpoint,
                                 args.num_proposals, args.device,
                                 args.cfg_options)
    dataset_cfg = None
    if args.dataset_config:
        dataset_cfg = Config.fromfile(
            args.dataset_config).train_dataloader.dataset
    dataset = build_proposal_dataset(
        model.cfg, dataset_cfg=dataset_cfg, ann_file=args.ann_file,
        img_dir=args.img_dir, data_root=args.data_root)
    teacher = CLIPTeacher(clip_model, checkpoint=clip_checkpoint)
    summary = precompute_vild_embeds(
        model, teacher, dataset, args.out,
        num_proposals=args.num_proposals,
        scales=args.scales,
        shard_size=args.shard_size,
        batch_size=args.batch_size,
        num_workers=args.num_workers,
        clip_batch_size=args.clip_batch_size,
        min_size=args.min_size,
        nms_iou=args.nms_iou,
        dtype=args.dtype,
        max_shards=args.max_shards,
        part=args.part,
        num_parts=args.num_parts)
    state = 'complete' if summary['complete'] else \
        'incomplete: rerun the command to finish it'
    logger.info(f'{osp.abspath(args.out)}: computed {summary["computed"]} '
                f'shards, kept {summary["skipped"]}; the store is {state}.')


if __name__ == '__main__':
    main()
