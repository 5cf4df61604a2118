# Copyright (c) mmovl contributors. All rights reserved.
"""Open-vocabulary detection demo: find objects of category names you
choose in images, print the boxes and draw them.

    python demo/det_demo.py data/toy_world/val/000001.png \\
        configs/vild/vild_toy_r18_fpn_toy.py epoch_12.pth \\
        --labels "red circle,yellow circle,purple star" --out-dir outputs

Inputs are image files and / or folders of images. Names come from
``--labels`` (comma-separated), ``--labels-file`` (one a line) or, with
neither, the classes the checkpoint was trained on. Names the checkpoint
was not trained on count as novel for ViLD-ensemble's weighting, unless
``--novel`` names the novel ones. Pictures go to ``OUT_DIR/vis/`` (mmdet's
layout), and with ``--save-pred`` the detections to ``OUT_DIR/preds/`` as
json.
"""
import argparse
import os.path as osp

from mmovl.apis.inferencers import OpenVocabDetInferencer, list_images
from mmovl.utils import enable_safe_checkpoint_loading


def parse_args():
    parser = argparse.ArgumentParser(
        description='Detect objects of category names of your choice')
    parser.add_argument('inputs', nargs='+', help='image files or folders')
    parser.add_argument('config', help='config of a ViLD model')
    parser.add_argument('checkpoint', help='its checkpoint')
    labels = parser.add_mutually_exclusive_group()
    labels.add_argument('--labels', help='comma-separated category names, '
                        'e.g. "red circle,blue square"')
    labels.add_argument('--labels-file', help='text file of category names, '
                        'one a line')
    parser.add_argument('--novel', help='comma-separated names (among the '
                        'labels) to weigh as novel; "" for none; default: '
                        'those the checkpoint was not trained on')
    parser.add_argument('--score-thr', type=float, default=0.3,
                        help='print and draw boxes scoring at least this')
    parser.add_argument('--out-dir', help='write pictures with the boxes '
                        'drawn to OUT_DIR/vis/')
    parser.add_argument('--save-pred', action='store_true',
                        help='also write every detection to '
                        'OUT_DIR/preds/<image name>.json')
    parser.add_argument('--resize', type=int, default=256,
                        help='short edge of the pictures, so that the names '
                        'are legible on small images; 0 keeps the size')
    parser.add_argument('--batch-size', type=int, default=1)
    parser.add_argument('--device', default=None, help='e.g. cuda:0; '
                        'default: a GPU if there is one')
    parser.add_argument('--cache-dir', help='disk cache of label embeddings '
                        '(a vocabulary is encoded once across runs)')
    parser.add_argument('--show', action='store_true',
                        help='show the pictures in a window')
    args = parser.parse_args()
    if args.save_pred and not args.out_dir:
        parser.error('--save-pred needs --out-dir')
    return args


def main():
    # Any checkpoint mmengine loads: weights_only=True plus its own types
    # (the inferencer reads its weights that way itself).
    enable_safe_checkpoint_loading()
    args = parse_args()
    images = list_images(args.inputs)  # folders: their images, by name
    if args.labels is not None:
        vocabulary = args.labels.split(',')
    else:
        vocabulary = args.labels_file  # None: the checkpoint's classes
    novel = None
    if args.novel is not None:
        novel = [n.strip() for n in args.novel.split(',') if n.strip()]
    inferencer = OpenVocabDetInferencer(
        args.config, args.checkpoint, vocabulary=vocabulary, novel=novel,
        device=args.device, cache_dir=args.cache_dir)

    results = inferencer(
        images, batch_size=args.batch_size, out_dir=args.out_dir or '',
        no_save_pred=not args.save_pred, pred_score_thr=args.score_thr,
        show=args.show, resize=args.resize or None)

    width = max(len(n) for n in inferencer.classes)
    print()  # rich's progress bar leaves no line end when piped
    for image, pred in zip(images, results['predictions']):
        kept = [(n, s, b) for n, s, b in zip(pred['names'], pred['scores'],
                                             pred['bboxes'])
                if s >= args.score_thr]
        print(f'{image}: {len(kept)} detections')
        for name, score, box in kept:
            box = ', '.join(f'{v:.1f}' for v in box)
            print(f'  {name:<{width}}  {score:.4f}  [{box}]')
    if args.out_dir:
        vis_dir = osp.abspath(osp.join(args.out_dir, 'vis'))
        print(f'Pictures written to {vis_dir}')


if __name__ == '__main__':
    main()
