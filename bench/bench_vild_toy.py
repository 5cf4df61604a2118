# Copyright (c) mmovl contributors. All rights reserved.
"""ViLD on the toy world: box AP on the unseen (novel) labels.

The whole recipe, in one run:

1. ViLD-text (``configs/vild/vild_text_toy_r18_fpn_toy.py``) trains on the
   24 seen labels (unseen boxes removed);
2. its class-agnostic RPN proposes boxes on the training images, and
   ``tools/misc/precompute_vild_embeds.py`` stores the toy CLIP's embedding
   of each proposal's 1x + 1.5x crops;
3. ViLD (``configs/vild/vild_toy_r18_fpn_toy.py``: text branch + image
   branch distilled toward those embeddings) trains the same way;
4. every model is tested on all 30 labels: ViLD-text's text scores, and the
   full ViLD's text-only, image-only and ensemble scores (one model, three
   ``score_mode`` settings).

A closed-vocabulary detector trained on the seen labels has no output for an
unseen label, so its novel AP is 0 by construction (printed as such).

    python bench/bench_vild_toy.py [--epochs 6] [--num-proposals 20]

Needs the toy teacher at data/toy_world/toy_clip.safetensors
(``make toy-teacher``).
"""
import argparse
import glob
import json
import os
import os.path as osp
import subprocess
import sys
import time

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TEXT = 'configs/vild/vild_text_toy_r18_fpn_toy.py'
FULL = 'configs/vild/vild_toy_r18_fpn_toy.py'
TEACHER = 'data/toy_world/toy_clip.safetensors'
KEYS = ('novel_ap50', 'novel_ap', 'base_ap50', 'base_ap')


def run(args, log):
    """Run a tool quietly; on failure show the end of its output."""
    os.makedirs(osp.dirname(log), exist_ok=True)
    with open(log, 'w') as f:
        proc = subprocess.run(args, cwd=REPO, stdout=f,
                              stderr=subprocess.STDOUT)
    if proc.returncode:
        with open(log) as f:
            tail = f.read()[-3000:]
        sys.exit(f'{" ".join(args[:3])} failed (log: {log}):\n{tail}')


def schedule(epochs):
    return [f'train_cfg.max_epochs={epochs}',
            f'train_cfg.val_interval={epochs}',
            f'param_scheduler.1.end={epochs}',
            'param_scheduler.1.milestones=[{},{}]'.format(
                max(1, round(epochs * 0.75)), max(1, epochs - 1))]


def train(config, work, epochs, options=()):
    start = time.perf_counter()
    run([sys.executable, 'tools/train.py', config, '--work-dir', work,
         '--cfg-options', *schedule(epochs), *options],
        osp.join(REPO, work + '.log'))
    return osp.join(work, f'epoch_{epochs}.pth'), \
        (time.perf_counter() - start) / 60


def test(config, ckpt, work, options=()):
    cmd = [sys.executable, 'tools/test.py', config, ckpt, '--work-dir', work]
    if options:
        cmd += ['--cfg-options', *options]
    run(cmd, osp.join(REPO, work + '.log'))
    log = sorted(glob.glob(osp.join(REPO, work, '*', '*.json')))[-1]
    with open(log) as f:
        metrics = json.load(f)
    out = {}
    for key in KEYS:
        found = [v for k, v in metrics.items() if k.endswith('/' + key)]
        if not found:
            sys.exit(f'{log} has no {key!r}: {sorted(metrics)}')
        out[key] = 100 * found[0]
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--epochs', type=int, default=6)
    p.add_argument('--num-proposals', type=int, default=20)
    p.add_argument('--work-dir', default='work_dirs/bench_vild')
    args = p.parse_args()
    if not osp.isfile(osp.join(REPO, TEACHER)):
        sys.exit(f'{TEACHER} is missing: run `make toy-teacher` first')
    work = args.work_dir
    rows, minutes = {}, {}

    print(f'[1/4] training ViLD-text ({args.epochs} epochs) ...', flush=True)
    text_ckpt, minutes['text'] = train(TEXT, osp.join(work, 'vild_text'),
                                       args.epochs)

    print('[2/4] precomputing CLIP embeddings of its proposals ...',
          flush=True)
    store = osp.join(work, 'clip_embeds')
    start = time.perf_counter()
    # the teacher is the config's (the toy CLIP), which the store records
    run([sys.executable, 'tools/misc/precompute_vild_embeds.py', TEXT,
         text_ckpt, '--dataset-config', TEXT, '--out', store,
         '--num-proposals', str(args.num_proposals)],
        osp.join(REPO, work, 'precompute.log'))
    minutes['precompute'] = (time.perf_counter() - start) / 60

    print(f'[3/4] training ViLD ({args.epochs} epochs) ...', flush=True)
    full_ckpt, minutes['full'] = train(
        FULL, osp.join(work, 'vild'), args.epochs,
        [f'train_dataloader.dataset.pipeline.2.store_dir={store}'])

    print('[4/4] testing ...', flush=True)
    rows['ViLD-text'] = test(TEXT, text_ckpt, osp.join(work, 'test_text'))
    for mode in ('text', 'image', 'ensemble'):
        rows[f'ViLD, {mode} scores'] = test(
            FULL, full_ckpt, osp.join(work, f'test_{mode}'),
            [f'model.roi_head.bbox_head.score_mode={mode}'])

    print(f'\ntoy world test set, all 30 labels (6 novel); {args.epochs} '
          f'epochs each, {args.num_proposals} proposals per image')
    print(f'{"":<28}' + ''.join(f'{k:>12}' for k in KEYS))
    print(f'{"closed-vocabulary detector":<28}{0:12.2f}{0:12.2f}'
          f'{"-":>12}{"-":>12}   (no output for novel labels)')
    for name, res in rows.items():
        print(f'{name:<28}' + ''.join(f'{res[k]:12.2f}' for k in KEYS))
    print('\nminutes: ViLD-text training {text:.1f}, precompute '
          '{precompute:.1f}, ViLD training {full:.1f}'.format(**minutes))
    ens, text = rows['ViLD, ensemble scores'], rows['ViLD-text']
    verdict = 'met' if ens['novel_ap50'] > text['novel_ap50'] else 'NOT met'
    print(f'target (ensemble novel AP50 {ens["novel_ap50"]:.2f} > ViLD-text '
          f'{text["novel_ap50"]:.2f}): {verdict}')


if __name__ == '__main__':
    main()
