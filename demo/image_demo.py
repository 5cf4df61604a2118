# Copyright (c) mmovl contributors. All rights reserved.
"""Open-vocabulary classification demo: rank label names you choose on
images, print them and draw the top ones.

    python demo/image_demo.py data/toy_world/val/000001.png \\
        configs/mkt/mkt_toy_vit_p8_10e_toy.py epoch_10.pth \\
        --labels "red circle,yellow circle,blue square" --out-dir outputs

Inputs are image files and / or folders of images. Labels come from
``--labels`` (comma-separated), ``--labels-file`` (one a line) or, with
neither, the classes the checkpoint was trained on.
"""
import argparse
import os.path as osp

from mmovl.apis.inferencers import OpenVocabClsInferencer, list_images
from mmovl.utils import enable_safe_checkpoint_loading


def parse_args():
    parser = argparse.ArgumentParser(
        description='Rank label names of your choice on images')
    parser.add_argument('inputs', nargs='+', help='image files or folders')
    parser.add_argument('config', help='config of an MKT, CPRFL or UniCL '
                        'model')
    parser.add_argument('checkpoint', help='its checkpoint')
    labels = parser.add_mutually_exclusive_group()
    labels.add_argument('--labels', help='comma-separated label names, e.g. '
                        '"red circle,blue square"')
    labels.add_argument('--labels-file', help='text file of label names, one '
                        'a line')
    parser.add_argument('--topk', type=int, default=5,
                        help='labels to print and draw per image')
    parser.add_argument('--out-dir', help='write <image name>.png pictures '
                        'with the top labels drawn here')
    parser.add_argument('--resize', type=int, default=256,
                        help='short edge of the pictures, so that the text '
                        'is legible on small images; 0 keeps the size')
    parser.add_argument('--batch-size', type=int, default=1)
    parser.add_argument('--device', default=None, help='e.g. cuda:0; '
                        'default: cpu')
    parser.add_argument('--cache-dir', help='disk cache of label embeddings '
                        '(a vocabulary is encoded once across runs)')
    parser.add_argument('--show', action='store_true',
                        help='show the pictures in a window')
    return parser.parse_args()


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
    inferencer = OpenVocabClsInferencer(
        args.config, args.checkpoint, vocabulary=vocabulary,
        device=args.device, cache_dir=args.cache_dir)

    results = inferencer(
        images, topk=args.topk, batch_size=args.batch_size,
        show_dir=args.out_dir, show=args.show,
        resize=args.resize or None)

    width = max(len(n) for n in inferencer.classes)
    print()  # rich's progress bar leaves no line end when piped
    for image, result in zip(images, results):
        print(image)
        for rank, (name, score) in enumerate(
                zip(result['labels'], result['scores']), 1):
            print(f'  {rank:>2}. {name:<{width}}  {score:.4f}')
    if args.out_dir:
        print(f'Pictures written to {osp.abspath(args.out_dir)}')


if __name__ == '__main__':
    main()
