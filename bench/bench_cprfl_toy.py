# Copyright (c) mmovl contributors. All rights reserved.
"""CPRFL vs a plain linear multi-label head on the long-tailed toy world.

Three heads fine-tune the same pretrained backbone (the toy CLIP's image
tower) on the same data (annotations/instances_train_lt.json, all 30
labels) with ASL and the same schedule: CPRFL as its authors' code computes
it (cprfl_toy_vit_p8_10e_toy_lt.py), mmovl's earlier CPRFL variant (a
standard encoder layer over frozen label embeddings,
cprfl-enclayer_toy_vit_p8_10e_toy_lt.py) and a linear head. Prints
total / head / medium / tail mAP on the toy test set (groups from the
long-tailed training counts: head >= 100 images, tail < 20). Then, as
CPRFL's prompts come from label names, it trains CPRFL on the balanced
toy world's 24 seen labels and prints its ZSL (6 unseen labels) and GZSL
(all 30) scores.

    python bench/bench_cprfl_toy.py [--epochs 20] [--seed 0] [--zsl-epochs 10]

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
RUNS = (('linear head (baseline)',
         'configs/baseline/toy_vit_p8_linear_10e_toy_lt.py'),
        ('CPRFL (authors)', 'configs/cprfl/cprfl_toy_vit_p8_10e_toy_lt.py'),
        ('CPRFL (enc. layer)',
         'configs/cprfl/cprfl-enclayer_toy_vit_p8_10e_toy_lt.py'))
KEYS = ('lt/mAP', 'lt/head_mAP', 'lt/medium_mAP', 'lt/tail_mAP')
ZSL = 'configs/cprfl/cprfl_toy_vit_p8_10e_toy_zsl.py'
ZSL_KEYS = ('zsl/mAP', 'zsl/F1@3', 'gzsl/mAP', 'gzsl/F1@3')


def train_and_test(config, epochs, work_dir, seed):
    """Train ``config`` for ``epochs`` and test its last checkpoint."""
    work = osp.join(work_dir, osp.basename(config)[:-3])
    start = time.perf_counter()
    print(f'training {config} ...', flush=True)
    subprocess.run([
        sys.executable, 'tools/train.py', config, '--work-dir', work,
        '--cfg-options', f'train_cfg.max_epochs={epochs}',
        f'train_cfg.val_interval={epochs}', f'param_scheduler.1.end={epochs}',
        f'randomness.seed={seed}'
    ], cwd=REPO, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    minutes = (time.perf_counter() - start) / 60
    test = work + '_test'
    subprocess.run([
        sys.executable, 'tools/test.py', config,
        osp.join(work, f'epoch_{epochs}.pth'), '--work-dir', test
    ], cwd=REPO, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    log = sorted(glob.glob(osp.join(REPO, test, '*', '*.json')))[-1]
    with open(log) as f:
        return json.load(f), minutes


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--epochs', type=int, default=20)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--zsl-epochs', type=int, default=10,
                   help='epochs of the open-vocabulary run (0: skip it)')
    p.add_argument('--work-dir', default='work_dirs/bench_cprfl')
    args = p.parse_args()
    rows = {}
    for name, config in RUNS:
        metrics, minutes = train_and_test(config, args.epochs, args.work_dir,
                                          args.seed)
        rows[name] = ([metrics[f'multi-label/{k}'] for k in KEYS], minutes)
    print(f'\nlong-tailed toy world, {args.epochs} epochs each, seed '
          f'{args.seed}')
    print(f'{"":<24}' + ''.join(f'{k:>15}' for k in KEYS) + '  train min')
    for name, (values, minutes) in rows.items():
        print(f'{name:<24}' + ''.join(f'{v:15.2f}' for v in values) +
              f'{minutes:11.1f}')
    base = rows['linear head (baseline)'][0]
    for name in ('CPRFL (authors)', 'CPRFL (enc. layer)'):
        ours = rows[name][0]
        print(f'tail mAP: {name} {ours[3]:.2f} vs baseline {base[3]:.2f} '
              f'({ours[3] - base[3]:+.2f})')
    if args.zsl_epochs:
        metrics, minutes = train_and_test(ZSL, args.zsl_epochs, args.work_dir,
                                          args.seed)
        print(f'\nCPRFL as an open-vocabulary classifier ({ZSL}, '
              f'{args.zsl_epochs} epochs on the 24 seen labels, '
              f'{minutes:.1f} min):')
        print('  ' + ', '.join(f'{k} {metrics["multi-label/" + k]:.2f}'
                               for k in ZSL_KEYS))


if __name__ == '__main__':
    main()
