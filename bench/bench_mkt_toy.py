# Copyright (c) mmovl contributors. All rights reserved.
"""MKT on the toy world: the student against the teacher and random scores,
and the paper's ablations, all measured in one run.

Needs the toy teacher (``python bench/bench_unicl_toy.py --export-teacher``
or ``make demo``) at data/toy_world/toy_clip.safetensors.

    python bench/bench_mkt_toy.py [--epochs 10]

Rows: random scores; the teacher's zero-shot scores; MKT stage 1 with both
streams + distillation (the default), global only, local only, without
distillation; MKT after stage-2 prompt tuning of the default. Columns: ZSL
(6 unseen labels, images with one) and GZSL (all 30 labels) mAP and F1@3.
"""
import argparse
import glob
import json
import os.path as osp
import subprocess
import sys
import time

import numpy as np

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
STAGE1 = 'configs/mkt/mkt_toy_vit_p8_10e_toy.py'
STAGE2 = 'configs/mkt/mkt_toy_vit_p8_prompt_5e_toy.py'
KEYS = ['zsl/mAP', 'zsl/F1@3', 'gzsl/mAP', 'gzsl/F1@3']


def run(cmd):
    subprocess.run([sys.executable] + cmd, cwd=REPO, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_metrics(config, ckpt, work_dir):
    run(['tools/test.py', config, ckpt, '--work-dir', work_dir])
    log = sorted(glob.glob(osp.join(REPO, work_dir, '*', '*.json')))[-1]
    with open(log) as f:
        metrics = json.load(f)
    return {k: metrics[f'multi-label/{k}'] for k in KEYS}


def train(name, config, epochs, work_root, options=()):
    work = osp.join(work_root, name)
    start = time.perf_counter()
    run(['tools/train.py', config, '--work-dir', work, '--cfg-options',
         f'train_cfg.max_epochs={epochs}', f'train_cfg.val_interval={epochs}',
         f'param_scheduler.1.end={epochs}', *options])
    minutes = (time.perf_counter() - start) / 60
    ckpt = osp.join(work, f'epoch_{epochs}.pth')
    return ckpt, test_metrics(config, ckpt, work + '_test'), minutes


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--epochs', type=int, default=10)
    p.add_argument('--prompt-epochs', type=int, default=5)
    p.add_argument('--work-dir', default='work_dirs/bench_mkt')
    args = p.parse_args()
    sys.path.insert(0, REPO)
    from mmovl.datasets import CocoMultiLabelDataset
    from mmovl.models import CLIPTeacher
    from tools.analysis_tools.eval_zero_shot import evaluate, teacher_scores

    dataset = CocoMultiLabelDataset(
        data_root='data/toy_world', ann_file='annotations/instances_val.json',
        data_prefix='val', unseen_file='annotations/unseen_labels.txt',
        pipeline=[dict(type='LoadImageFromFile'), dict(type='PackInputs')])
    teacher = CLIPTeacher('mmovl-toy-vit',
                          checkpoint='data/toy_world/toy_clip.safetensors')
    rows = {}
    rng = np.random.default_rng(0)
    shape = (len(dataset), len(dataset.metainfo['classes']))
    rows['random scores'] = (evaluate(rng.random(shape), dataset), 0.0)
    rows['teacher (zero-shot)'] = (evaluate(
        teacher_scores(teacher, dataset, 128), dataset), 0.0)

    variants = [
        ('MKT (both + distill)', []),
        ('global only', ['model.head.streams=global']),
        ('local only', ['model.head.streams=local']),
        ('no distillation', ['model.distill_weight=0.0']),
    ]
    main_ckpt = None
    for name, options in variants:
        print(f'training {name} ...', flush=True)
        ckpt, metrics, minutes = train(
            name.split(' (')[0].replace(' ', '_'), STAGE1, args.epochs,
            args.work_dir, options)
        rows[name] = (metrics, minutes)
        main_ckpt = main_ckpt or ckpt
    print('prompt tuning ...', flush=True)
    _, metrics, minutes = train('prompt', STAGE2, args.prompt_epochs,
                                args.work_dir, [f'load_from={main_ckpt}'])
    rows['MKT + prompt tuning'] = (metrics, minutes)

    print(f'\ntoy world test set: {shape[0]} images, {shape[1]} labels '
          f'({len(dataset.metainfo["unseen_classes"])} unseen); stage 1 '
          f'{args.epochs} epochs, stage 2 {args.prompt_epochs}')
    print(f'{"":<22}' + ''.join(f'{k:>11}' for k in KEYS) + '  train min')
    for name, (res, minutes) in rows.items():
        print(f'{name:<22}' + ''.join(f'{res[k]:11.2f}' for k in KEYS) +
              f'{minutes:11.1f}')
    teacher = rows['teacher (zero-shot)'][0]['zsl/mAP']
    rand = rows['random scores'][0]['zsl/mAP']
    print('\nunseen-label mAP, targets: student >= 1x teacher, >= 3x random')
    for name in ('MKT (both + distill)', 'MKT + prompt tuning'):
        student = rows[name][0]['zsl/mAP']
        print(f'  {name:<22} {student / teacher:.2f}x teacher, '
              f'{student / rand:.2f}x random')


if __name__ == '__main__':
    main()
