# Copyright (c) mmovl contributors. All rights reserved.
"""Rehearse the real configs on miniature data with random weights.

    python tools/misc/rehearse.py                  # every real config, all
    python tools/misc/rehearse.py mkt_vit_b16_20e_nuswide --steps train test
    python tools/misc/rehearse.py --list

Each config trains through ``tools/train.py``, is killed after its first
checkpoint and resumed (the weights must equal the uninterrupted run's), is
tested with ``tools/test.py`` (the report must have the method's metrics),
trains and tests with ``tools/dist_*.sh`` on 2 processes (the metrics must
equal) and trains with ``--amp``. See :mod:`mmovl.testing.rehearsal`.

The scratch folder (``--root``, default ``work_dirs/rehearsal``) plays the
user's working directory: ``data/`` holds the miniature data sets,
``checkpoints/`` the random weights, ``rehearsal/<config>/`` each run's work
dir and log. It is reused: data, weights and caches are made once.
``--sizing`` also prints the sizing table (parameters, seconds per
iteration, peak memory, detection RoIs / proposals per image) and writes it
to ``<root>/sizing.md`` and ``<root>/summary.json``.
"""
import argparse
import json
import os.path as osp
import sys
import time

from mmovl.testing.rehearsal import (ALL_STEPS, REHEARSALS, RehearsalError,
                                     real_configs, rehearse)
from mmovl.testing.sizing import sizing_rows, sizing_table
from mmovl.utils import atomic_write_text


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('configs', nargs='*',
                   help='config names (file name without .py); default all')
    p.add_argument('--steps', nargs='+', default=list(ALL_STEPS),
                   choices=ALL_STEPS)
    p.add_argument('--root', default='work_dirs/rehearsal',
                   help='scratch folder (the runs\' working directory)')
    p.add_argument('--sizing', action='store_true',
                   help='also measure and print the sizing table')
    p.add_argument('--keep-going', action='store_true',
                   help='rehearse the other configs after a failure')
    p.add_argument('--list', action='store_true',
                   help='list the real configs and exit')
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.list:
        for name, r in REHEARSALS.items():
            print(f'{name:48s} {r.method:6s} {r.config}')
        return 0
    names = args.configs or list(REHEARSALS)
    unknown = [n for n in names if n not in REHEARSALS]
    if unknown:
        print(f'unknown config names {unknown}; --list shows them',
              file=sys.stderr)
        return 2
    uncovered = sorted(set(real_configs()) -
                       {r.config for r in REHEARSALS.values()})
    if uncovered:
        print(f'[rehearse] WARNING: real configs without a rehearsal: '
              f'{uncovered}', file=sys.stderr)
    reports, failures = [], []
    start = time.time()
    for i, name in enumerate(names, 1):
        print(f'[rehearse] ({i}/{len(names)}) {name}: '
              f'{" ".join(args.steps)}', flush=True)
        try:
            reports.append(
                rehearse(REHEARSALS[name], args.root, steps=args.steps))
        except RehearsalError as e:
            failures.append(name)
            print(f'[rehearse] FAILED {name}: {e}', file=sys.stderr,
                  flush=True)
            if not args.keep_going:
                break
    summary = dict(
        seconds=round(time.time() - start),
        failed=failures,
        reports=[dict(name=r.name, steps=r.steps, figures=r.figures,
                      step_seconds=r.step_seconds, metrics=r.metrics)
                 for r in reports])
    if args.sizing and reports:
        rows = sizing_rows([REHEARSALS[r.name] for r in reports], reports,
                           args.root)
        table = sizing_table(rows)
        print(table)
        atomic_write_text(osp.join(args.root, 'sizing.md'), table + '\n')
        summary['sizing'] = rows
    atomic_write_text(osp.join(args.root, 'summary.json'),
                      json.dumps(summary, indent=1, default=str) + '\n')
    print(f'[rehearse] {len(reports)} passed, {len(failures)} failed, in '
          f'{summary["seconds"]} s; summary in '
          f'{osp.join(args.root, "summary.json")}')
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
