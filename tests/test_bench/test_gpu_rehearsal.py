# Copyright (c) mmovl contributors. All rights reserved.
"""bench/gpu_rehearsal.py without a GPU: the configs it writes and the
figures it reads from mmengine's log (the run itself needs CUDA; on a CPU
`python bench/gpu_rehearsal.py --device cpu --iters 2 --batch 2 NAME`
runs it whole)."""
import importlib.util
import json
import os.path as osp

import pytest
from mmengine.config import Config

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@pytest.fixture(scope='module')
def bench():
    spec = importlib.util.spec_from_file_location(
        'gpu_rehearsal', osp.join(REPO, 'bench', 'gpu_rehearsal.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize('name,batch', [
    ('mkt_vit_b16_20e_nuswide', 64),
    ('vild_ens_r50_fpn_32xb8_180k_lvis_v1_base', 8),
])
def test_bench_config_keeps_the_per_gpu_batch(bench, tmp_path, name, batch):
    src = bench.REHEARSALS[name].config_path
    dst = str(tmp_path / 'cfg.py')
    assert bench._bench_config(src, dst, None, iters=7) == batch
    cfg = Config.fromfile(dst)
    assert cfg.train_dataloader.batch_size == batch
    assert cfg.train_cfg.max_iters == 7
    assert cfg.train_dataloader.dataset.type == 'RepeatDataset'
    # the model is the real config's
    assert cfg.model == Config.fromfile(src).model
    assert cfg.val_dataloader is None


def test_reference_configs_ship_with_the_frameworks(bench, tmp_path):
    for package, rel, _ in bench.REFERENCES.values():
        path = bench._package_config(package, rel)
        batch = bench._bench_config(path, str(tmp_path / 'r.py'), None, 3,
                                    data_root='/nowhere/')
        assert batch in (2, 64)  # mmdet's 2 / mmpretrain's 64 per GPU
        cfg = Config.fromfile(str(tmp_path / 'r.py'))
        assert cfg.train_dataloader.dataset.dataset.data_root == '/nowhere/'


def test_measure_reads_images_per_second_and_memory(bench, tmp_path):
    run = tmp_path / 'run' / '20260101_000000' / 'vis_data'
    run.mkdir(parents=True)
    times = [9.0, 0.5, 0.4, 0.6, 0.5]  # the first is warm-up
    with open(run / 'scalars.json', 'w') as f:
        for i, t in enumerate(times):
            f.write(json.dumps(dict(iter=i + 1, time=t, memory=1000 + i,
                                    loss=1.0)) + '\n')
    got = bench._measure(str(tmp_path / 'run'), batch=8, warmup=1)
    assert got['img_s'] == pytest.approx(8 / 0.5)  # median of the rest
    assert got['mem_gb'] == round(1004 / 1024, 2)
