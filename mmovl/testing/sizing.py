# Copyright (c) mmovl contributors. All rights reserved.
"""The sizing table of the real configs, from their rehearsal: what a user
needs to size a GPU run (parameters, time per iteration, memory, and for
detection the proposals and RoIs per image)."""
import json
import subprocess
import sys
from typing import List, Sequence

__all__ = ['count_parameters', 'sizing_rows', 'sizing_table']

# Builds a config's model as the runner would (in its default scope, from
# the registry of the framework it belongs to) and counts its parameters.
_COUNT = '''
import json, sys
from mmengine.config import Config
from mmengine.registry import init_default_scope
import mmovl
cfg = Config.fromfile(sys.argv[1])
init_default_scope(cfg.get('default_scope', 'mmpretrain'))
if cfg.get('default_scope') == 'mmdet':
    from mmdet.registry import MODELS
else:
    from mmpretrain.registry import MODELS
model = MODELS.build(cfg.model)
model.train()
total = sum(p.numel() for p in model.parameters())
trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
print('PARAMS ' + json.dumps(dict(total=total, trainable=trainable)))
'''


def count_parameters(config: str, cwd: str, env: dict) -> dict:
    """``{'total': n, 'trainable': n}`` of ``config``'s model, built in a
    subprocess with ``cwd`` as working directory (the rehearsal's, where
    the checkpoints its model loads exist). A teacher kept out of
    ``parameters()`` is not counted."""
    proc = subprocess.run([sys.executable, '-c', _COUNT, config], cwd=cwd,
                          env=env, capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        if line.startswith('PARAMS '):
            return json.loads(line[len('PARAMS '):])
    raise RuntimeError(f'could not count the parameters of {config}:\n'
                       f'{proc.stderr[-3000:]}')


def _detection_sizes(config: str) -> dict:
    from mmengine.config import Config
    cfg = Config.fromfile(config)
    model = cfg.model
    sizes = dict(
        rpn_train=model.train_cfg.rpn_proposal.max_per_img,
        rpn_test=model.test_cfg.rpn.max_per_img,
        rois_train=model.train_cfg.rcnn.sampler.num,
        dets_test=model.test_cfg.rcnn.max_per_img)
    return sizes


def sizing_rows(rehearsals: Sequence, reports: Sequence,
                root: str) -> List[dict]:
    """One row per rehearsed config."""
    from mmovl.testing.rehearsal import make_env
    env = make_env(root)
    rows = []
    for rehearsal, report in zip(rehearsals, reports):
        params = count_parameters(rehearsal.config_path, root, env)
        opts = rehearsal.options
        row = dict(
            config=rehearsal.config, method=rehearsal.method,
            params=params['total'], trainable=params['trainable'],
            batch=opts.get('train_dataloader.batch_size'),
            s_per_iter=report.figures.get('s_per_iter'),
            peak_rss_gb=report.figures.get('peak_rss_gb'))
        if rehearsal.method == 'ViLD':
            row.update(_detection_sizes(rehearsal.config_path))
        rows.append(row)
    return rows


def _millions(n: int) -> str:
    # A prompt's few thousand parameters would round to 0.0 M.
    return f'{n / 1e6:.1f}' if n >= 100000 else f'{n:,} (not M)'


def sizing_table(rows: Sequence[dict]) -> str:
    """The rows as a Markdown table."""
    lines = [
        '| config | params (M) | trainable (M) | batch | s / iter | '
        'peak RSS (GB) | RPN proposals / img (train, test) | '
        'RoIs / img (train) | detections / img (test) |',
        '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |'
    ]
    for r in rows:
        det = ('-', '-', '-')
        if 'rpn_train' in r:
            det = (f'{r["rpn_train"]}, {r["rpn_test"]}', r['rois_train'],
                   r['dets_test'])
        lines.append(
            f'| {r["config"]} | {_millions(r["params"])} | '
            f'{_millions(r["trainable"])} | '
            f'{r["batch"]} | {r["s_per_iter"]} | {r["peak_rss_gb"]} | '
            f'{det[0]} | {det[1]} | {det[2]} |')
    return '\n'.join(lines)
