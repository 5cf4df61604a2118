# Copyright (c) mmovl contributors. All rights reserved.
"""The GPU check: every real config on CUDA at its own per-GPU batch size
with ``--amp``, next to the frameworks' own models on the same data in the
same run.

    bash bench/gpu_rehearsal.sh            # = python bench/gpu_rehearsal.py

For each real config it trains ``--iters`` iterations through
``tools/train.py --amp`` on the rehearsal's miniature data (repeated so an
epoch holds enough batches) with random weights at the real architecture,
and reads mmengine's per-iteration log: images per second (batch / median
iteration time after ``--warmup`` iterations) and peak GPU memory
(``torch.cuda.max_memory_allocated``, which mmengine logs as ``memory``).
The references run the same way on the same data:

- mmpretrain's ViT-B/16 classifier (its ``vit-base-p16_64xb64_in1k``
  config), the reference of MKT, CPRFL and UniCL;
- mmdet's Mask R-CNN R-50 FPN (``mask-rcnn_r50_fpn_1x_coco``), the
  reference of ViLD.

The ratio mmovl / framework (img/s and memory) is the figure; the table is
printed and written to ``<root>/gpu_rehearsal.md``. ``--device cpu --iters
2`` runs the same script on a CPU (bfloat16 autocast), which is how the
tests keep it working on machines without a GPU.
"""
import argparse
import glob
import json
import os
import os.path as osp
import statistics
import sys

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)

from mmovl.testing.rehearsal import (REHEARSALS, RehearsalError,  # noqa
                                     _run, make_env, prepare)
from mmovl.utils import atomic_write_text  # noqa: E402

# name -> (framework config inside the installed package, data maker,
# data root the config reads, its dataset's data_root key)
REFERENCES = {
    'mmpretrain ViT-B/16': ('mmpretrain', 'vision_transformer/'
                            'vit-base-p16_64xb64_in1k.py', 'imagenet'),
    'mmdet Mask R-CNN R-50 FPN': ('mmdet', 'mask_rcnn/'
                                  'mask-rcnn_r50_fpn_1x_coco.py', 'coco'),
}
REFERENCE_OF = {'MKT': 'mmpretrain ViT-B/16', 'CPRFL': 'mmpretrain ViT-B/16',
                'UniCL': 'mmpretrain ViT-B/16',
                'ViLD': 'mmdet Mask R-CNN R-50 FPN'}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('configs', nargs='*', help='rehearsal names (default all)')
    p.add_argument('--root', default='work_dirs/gpu_rehearsal')
    p.add_argument('--iters', type=int, default=30)
    p.add_argument('--warmup', type=int, default=10)
    p.add_argument('--device', choices=['cuda', 'cpu'], default='cuda')
    p.add_argument('--batch', type=int, default=None,
                   help='override every per-GPU batch (default: the '
                   'configs\' own)')
    return p.parse_args(argv)


def _package_config(package: str, rel: str) -> str:
    import importlib
    mod = importlib.import_module(package)
    path = osp.join(osp.dirname(mod.__file__), '.mim', 'configs', rel)
    if not osp.isfile(path):
        raise FileNotFoundError(f'{package} ships no config {rel} ({path})')
    return path


def _bench_config(src: str, dst: str, batch, iters: int,
                  data_root=None) -> int:
    """Write ``src`` as ``iters`` iterations over its (repeated) training
    set, without validation, schedules or checkpoints; return the batch
    size."""
    from mmengine.config import Config
    cfg = Config.fromfile(src)
    loader = cfg.train_dataloader
    if batch:
        loader.batch_size = batch
    loader.num_workers = min(loader.get('num_workers', 2), 8)
    if data_root is not None:
        _set_data_root(loader.dataset, data_root)
    # Repeated so that one pass holds full batches even from a few images.
    loader.dataset = dict(type='RepeatDataset', times=loader.batch_size,
                          dataset=loader.dataset)
    loader.pop('batch_sampler', None)
    loader.sampler = dict(type='InfiniteSampler', shuffle=True)
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=iters,
                         val_interval=iters + 1)
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook',
                                        interval=10**9)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1)
    cfg.param_scheduler = []
    cfg.dump(dst)
    return loader.batch_size


def _set_data_root(dataset, root: str) -> None:
    while 'dataset' in dataset:
        dataset = dataset.dataset
    dataset.data_root = root


def _measure(work_dir: str, batch: int, warmup: int) -> dict:
    rows = []
    for path in glob.glob(osp.join(work_dir, '*', 'vis_data',
                                   'scalars.json')):
        with open(path) as f:
            rows += [json.loads(line) for line in f]
    rows = [r for r in rows if 'time' in r][warmup:]
    if not rows:
        raise RehearsalError(f'no timed iterations logged in {work_dir}')
    median = statistics.median(r['time'] for r in rows)
    memory = max((r.get('memory', 0) for r in rows), default=0)
    return dict(batch=batch, img_s=float(f'{batch / median:.3g}'),
                mem_gb=round(memory / 1024, 2))


def main(argv=None) -> int:
    args = parse_args(argv)
    root = osp.abspath(args.root)
    os.makedirs(root, exist_ok=True)
    env = make_env(root)
    if args.device == 'cuda':
        env.pop('CUDA_VISIBLE_DEVICES', None)
        env['MMOVL_REHEARSAL_DEVICE'] = 'cuda'
    names = args.configs or list(REHEARSALS)
    iters = args.iters + args.warmup
    results = {}
    for name in names:
        rehearsal = REHEARSALS[name]
        prepare(rehearsal, root, env)
        cfg_path = osp.join(root, 'gpu_configs', f'{name}.py')
        os.makedirs(osp.dirname(cfg_path), exist_ok=True)
        batch = _bench_config(rehearsal.config_path, cfg_path, args.batch,
                              iters)
        work_dir = osp.join(root, 'runs', name)
        _run([sys.executable, osp.join(REPO, 'tools/train.py'), cfg_path,
              '--work-dir', work_dir, '--amp'], root, env,
             f'{name} on {args.device}', work_dir + '.log')
        results[name] = _measure(work_dir, batch, args.warmup)
        print(f'[gpu rehearsal] {name}: {results[name]}', flush=True)
    from mmovl.testing.rehearsal import _DATA_MAKERS
    for ref, (package, rel, data) in REFERENCES.items():
        if ref not in {REFERENCE_OF[REHEARSALS[n].method] for n in names}:
            continue
        data_root = osp.join(root, _DATA_MAKERS[data][2]) + '/'
        fake = [r for r in REHEARSALS.values() if data in r.data][0]
        prepare(fake, root, env)
        cfg_path = osp.join(root, 'gpu_configs', f'ref_{data}.py')
        batch = _bench_config(_package_config(package, rel), cfg_path,
                              args.batch, iters, data_root=data_root)
        work_dir = osp.join(root, 'runs', f'ref_{data}')
        _run([sys.executable, osp.join(REPO, 'tools/train.py'), cfg_path,
              '--work-dir', work_dir, '--amp'], root, env,
             f'{ref} on {args.device}', work_dir + '.log')
        results[ref] = _measure(work_dir, batch, args.warmup)
        print(f'[gpu rehearsal] {ref}: {results[ref]}', flush=True)
    lines = ['| model | batch / GPU | img/s | peak memory (GB) | '
             'img/s ratio | memory ratio | against |',
             '| --- | ---: | ---: | ---: | ---: | ---: | --- |']
    for name in names:
        r = results[name]
        ref = REFERENCE_OF[REHEARSALS[name].method]
        f = results.get(ref)
        speed = f'{r["img_s"] / f["img_s"]:.2f}' if f else '-'
        mem = (f'{r["mem_gb"] / f["mem_gb"]:.2f}'
               if f and f['mem_gb'] else '-')
        lines.append(f'| {name} | {r["batch"]} | {r["img_s"]} | '
                     f'{r["mem_gb"]} | {speed} | {mem} | {ref} |')
    for ref in REFERENCES:
        if ref in results:
            r = results[ref]
            lines.append(f'| {ref} | {r["batch"]} | {r["img_s"]} | '
                         f'{r["mem_gb"]} | 1 | 1 | |')
    table = '\n'.join(lines)
    print(table)
    atomic_write_text(osp.join(root, 'gpu_rehearsal.md'), table + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
