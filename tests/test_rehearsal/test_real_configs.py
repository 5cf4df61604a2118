# Copyright (c) mmovl contributors. All rights reserved.
"""The real (paper-size) configs, rehearsed through the real tools on
miniature data in the official formats with random weights at the real
architectures (see mmovl/testing/rehearsal.py).

In CI every real config trains, is killed after its first checkpoint and
resumed (weights equal to an uninterrupted run), and tests (the method's
metric keys), except that an alias (a second file name with the same
settings) only trains and tests; one config per method also trains and
tests on 2 processes (metrics equal to 1 process) and trains with --amp.
``make rehearse`` (``python tools/misc/rehearse.py``) runs every step of
every config; so does
this file with ``MMOVL_REHEARSE=full``. ``MMOVL_REHEARSAL_ROOT`` keeps the
scratch folder (data, weights, caches) between sessions.
"""
import os

import pytest

from mmovl.testing.rehearsal import (ALL_STEPS, REHEARSALS, real_configs,
                                     rehearse)

#: One config per method gets the whole matrix in CI.
WHOLE_MATRIX_IN_CI = (
    'mkt_vit_b16_20e_nuswide',
    'cprfl_r101_80e_voc_lt',
    'vild_r50_fpn_32xb8_180k_coco_ov_48_17',  # box-only: the cheapest
    'unicl_vit_b16_32e_in1k',
)


@pytest.fixture(scope='session')
def rehearsal_root(tmp_path_factory):
    root = os.environ.get('MMOVL_REHEARSAL_ROOT')
    if root:
        os.makedirs(root, exist_ok=True)
        return root
    return str(tmp_path_factory.mktemp('rehearsal'))


def test_every_real_config_has_a_rehearsal():
    assert sorted(real_configs()) == sorted(r.config
                                            for r in REHEARSALS.values())
    assert set(WHOLE_MATRIX_IN_CI) <= set(REHEARSALS)
    methods = {REHEARSALS[n].method for n in WHOLE_MATRIX_IN_CI}
    assert methods == {r.method for r in REHEARSALS.values()}


@pytest.mark.parametrize('name', list(REHEARSALS))
def test_real_config(name, rehearsal_root):
    full = (name in WHOLE_MATRIX_IN_CI
            or os.environ.get('MMOVL_REHEARSE') == 'full')
    steps = ALL_STEPS if full else ('train', 'resume', 'test')
    if REHEARSALS[name].same_as and not os.environ.get('MMOVL_REHEARSE'):
        # An alias: its settings are checked equal to the original's (which
        # gets the matrix); the file itself trains and tests.
        steps = ('train', 'test')
    # A scratch folder that is not kept loses each config's checkpoints
    # once its rehearsal passed (the whole matrix writes tens of GB).
    report = rehearse(REHEARSALS[name], rehearsal_root, steps=steps,
                      verbose=True,
                      keep_checkpoints=bool(
                          os.environ.get('MMOVL_REHEARSAL_ROOT')))
    assert set(steps) <= set(report.steps)
