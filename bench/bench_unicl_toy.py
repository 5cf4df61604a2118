# Copyright (c) mmovl contributors. All rights reserved.
"""The toy CLIP teacher's zero-shot quality, and UniCL vs CLIP's loss.

Pretrains the toy open_clip ViT on the toy world twice with the same data,
schedule and seed, once with UniCL's label-aware targets and once with
CLIP's one-positive targets (``model.label_aware=False``), exports both and
reports their zero-shot multi-label figures on the toy test set next to
random scores, in the same run:

    python bench/bench_unicl_toy.py [--epochs 10] \
        [--work-dir work_dirs/bench_unicl]

The UniCL teacher is kept as data/toy_world/toy_clip.safetensors when
``--export-teacher`` is given (the teacher later methods distil from).
"""
import argparse
import os.path as osp
import shutil
import subprocess
import sys
import time

import numpy as np

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG = 'configs/unicl/unicl_toy_vit_p8_10e_toy.py'


def train_and_export(name, epochs, work_dir, extra):
    work = osp.join(work_dir, name)
    cmd = [
        sys.executable, 'tools/train.py', CONFIG, '--work-dir', work,
        '--cfg-options', f'train_cfg.max_epochs={epochs}',
        f'param_scheduler.1.end={epochs}', f'train_cfg.val_interval={epochs}',
        f'default_hooks.checkpoint.interval={epochs}'
    ] + extra
    start = time.perf_counter()
    subprocess.run(cmd, cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    minutes = (time.perf_counter() - start) / 60
    out = osp.join(work, 'open_clip.safetensors')
    subprocess.run([
        sys.executable, 'tools/model_converters/unicl_to_open_clip.py',
        osp.join(work, f'epoch_{epochs}.pth'), out
    ], cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    return out, minutes


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--epochs', type=int, default=10)
    p.add_argument('--work-dir', default='work_dirs/bench_unicl')
    p.add_argument('--data-root', default='data/toy_world')
    p.add_argument('--export-teacher', action='store_true')
    args = p.parse_args()
    sys.path.insert(0, REPO)
    from mmovl.datasets import CocoMultiLabelDataset
    from mmovl.models import CLIPTeacher
    from tools.analysis_tools.eval_zero_shot import evaluate, teacher_scores

    dataset = CocoMultiLabelDataset(
        data_root=args.data_root, ann_file='annotations/instances_val.json',
        data_prefix='val', unseen_file='annotations/unseen_labels.txt',
        pipeline=[dict(type='LoadImageFromFile'), dict(type='PackInputs')])
    rows = {}
    for name, extra in (('UniCL', []), ('CLIP loss',
                                        ['model.label_aware=False'])):
        print(f'training the toy teacher with the {name} ...', flush=True)
        ckpt, minutes = train_and_export(name.replace(' ', '_'), args.epochs,
                                         args.work_dir, extra)
        teacher = CLIPTeacher('mmovl-toy-vit', checkpoint=ckpt)
        rows[name] = (evaluate(teacher_scores(teacher, dataset, 128),
                               dataset), minutes)
        if name == 'UniCL' and args.export_teacher:
            shutil.copy(ckpt, osp.join(args.data_root,
                                       'toy_clip.safetensors'))
    rng = np.random.default_rng(0)
    n, c = len(dataset), len(dataset.metainfo['classes'])
    rows['random scores'] = (evaluate(rng.random((n, c)), dataset), 0.0)

    keys = ['zsl/mAP', 'zsl/F1@3', 'gzsl/mAP', 'gzsl/F1@3', 'seen/mAP']
    print(f'\ntoy world test set ({n} images, {c} labels, '
          f'{len(dataset.metainfo["unseen_classes"])} unseen), '
          f'{args.epochs} epochs each')
    print(f'{"":<14}' + ''.join(f'{k:>11}' for k in keys) + '   train min')
    for name, (res, minutes) in rows.items():
        print(f'{name:<14}' + ''.join(f'{res[k]:11.2f}' for k in keys) +
              f'{minutes:11.1f}')
    uni, clip, rnd = (rows[k][0]['zsl/mAP']
                      for k in ('UniCL', 'CLIP loss', 'random scores'))
    print(f'\nunseen mAP: UniCL / random = {uni / rnd:.2f}x, '
          f'UniCL - CLIP loss = {uni - clip:+.2f}')


if __name__ == '__main__':
    main()
