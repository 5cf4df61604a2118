# Copyright (c) mmovl contributors. All rights reserved.
"""CPRFL vs a plain linear multi-label head on the long-tailed toy world.

Both fine-tune the same pretrained backbone (the toy CLIP's image tower) on
the same data (annotations/instances_train_lt.json, all 30 labels) with the
same ASL loss and schedule; only the head differs. Prints
total / head / medium / tail mAP on the toy test set (groups from the
long-tailed training counts: head > 100 images, tail < 20).

    python bench/bench_cprfl_toy.py [--epochs 20]

Needs the toy teacher at data/toy_world/toy_clip.safetensors (the backbone
and CPRFL's label embeddings; ``make toy-teacher``).
"""
import argparse
import glob
import json
import os.path as osp
import subprocess
import sys
import time

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
RUNS = (('linear head (baseline)', 'configs/cprfl/toy_vit_p8_linear_10e_toy_lt.py'),
        ('CPRFL', 'configs/cprfl/cprfl_toy_vit_p8_10e_toy_lt.py'))
KEYS = ('lt/mAP', 'lt/head_mAP', 'lt/medium_mAP', 'lt/tail_mAP')


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--epochs', type=int, default=20)
    p.add_argument('--work-dir', default='work_dirs/bench_cprfl')
    args = p.parse_args()
    rows = {}
    for name, config in RUNS:
        work = osp.join(args.work_dir, osp.basename(config)[:-3])
        start = time.perf_counter()
        print(f'training {name} ...', flush=True)
        subprocess.run([
            sys.executable, 'tools/train.py', config, '--work-dir', work,
            '--cfg-options', f'train_cfg.max_epochs={args.epochs}',
            f'train_cfg.val_interval={args.epochs}',
            f'param_scheduler.1.end={args.epochs}'
        ], cwd=REPO, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        minutes = (time.perf_counter() - start) / 60
        test = work + '_test'
        subprocess.run([
            sys.executable, 'tools/test.py', config,
            osp.join(work, f'epoch_{args.epochs}.pth'), '--work-dir', test
        ], cwd=REPO, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        log = sorted(glob.glob(osp.join(REPO, test, '*', '*.json')))[-1]
        with open(log) as f:
            metrics = json.load(f)
        rows[name] = ([metrics[f'multi-label/{k}'] for k in KEYS], minutes)
    print(f'\nlong-tailed toy world, {args.epochs} epochs each')
    print(f'{"":<24}' + ''.join(f'{k:>15}' for k in KEYS) + '  train min')
    for name, (values, minutes) in rows.items():
        print(f'{name:<24}' + ''.join(f'{v:15.2f}' for v in values) +
              f'{minutes:11.1f}')
    base, ours = rows['linear head (baseline)'][0], rows['CPRFL'][0]
    print(f'\ntail mAP: CPRFL {ours[3]:.2f} vs baseline {base[3]:.2f} '
          f'({ours[3] - base[3]:+.2f}; target > 0)')


if __name__ == '__main__':
    main()
