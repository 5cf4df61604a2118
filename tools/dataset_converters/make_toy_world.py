# Copyright (c) mmovl contributors. All rights reserved.
"""Write the toy world (see mmovl/datasets/toy_world.py).

    python tools/dataset_converters/make_toy_world.py data/toy_world

Idempotent: an identical world already in the folder is kept.
"""
import argparse
import time

from mmovl.datasets.toy_world import ToyWorldConfig, generate_toy_world
from mmovl.utils.progress import Progress


def parse_args():
    default = ToyWorldConfig()
    parser = argparse.ArgumentParser(description='Generate the toy world')
    parser.add_argument('out_dir', nargs='?', default='data/toy_world')
    parser.add_argument('--num-train', type=int, default=default.num_train)
    parser.add_argument(
        '--num-train-lt', type=int, default=default.num_train_lt)
    parser.add_argument('--num-val', type=int, default=default.num_val)
    parser.add_argument(
        '--image-size', type=int, default=default.image_size)
    parser.add_argument('--seed', type=int, default=default.seed)
    parser.add_argument(
        '--force', action='store_true', help='regenerate even if present')
    return parser.parse_args()


def main():
    args = parse_args()
    cfg = ToyWorldConfig(
        num_train=args.num_train,
        num_train_lt=args.num_train_lt,
        num_val=args.num_val,
        image_size=args.image_size,
        seed=args.seed)
    total = cfg.num_train + cfg.num_train_lt + cfg.num_val
    start = time.perf_counter()
    with Progress(total, 'toy world images') as progress:
        written = generate_toy_world(
            args.out_dir, cfg, progress=progress.update, force=args.force)
    if written:
        print(f'wrote {total} images to {args.out_dir} in '
              f'{time.perf_counter() - start:.1f} s')
    else:
        print(f'{args.out_dir} already holds this toy world; kept it')


if __name__ == '__main__':
    main()
