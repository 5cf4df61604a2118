# Copyright (c) mmovl contributors. All rights reserved.
"""Rehearse the real (paper-size) configs end to end on miniature data.

Each real config under ``configs/`` runs through the real tools, in a
scratch folder that plays the user's working directory: the config's own
relative paths (``data/...``, ``checkpoints/...``, ``work_dirs/...``) are
filled with miniature data sets in their official formats (made by
:mod:`mmovl.testing.mini_cls` / :mod:`mmovl.testing.mini_det`, through
mmovl's converters) and random-weight checkpoints at the real architectures
(:mod:`mmovl.testing.random_weights`). Only the batch sizes, iteration
counts, worker counts, the logging interval and the seed are overridden,
through ``--cfg-options``; and two things that random weights or a
miniature data set force: the detectors' test score threshold (0: an
untrained detector scores every class below 1e-4) and the vocabulary of
UniCL's ImageNet validation (the miniature's 5 classes, not 1000).

The steps, for each config:

- ``train``: ``tools/train.py`` without interruption (the reference; for
  the classifiers the only run that validates while training, where the
  config does in 2 epochs; the others pass ``--no-validate``:
  :class:`mmovl.engine.RNGStateHook` keeps validation from changing
  training, and the test step evaluates);
- ``resume``: the same training killed (SIGKILL) once its first checkpoint
  is on disk, then ``--resume``; its final weights must equal the
  reference's;
- ``test``: ``tools/test.py`` on the reference's final checkpoint; the
  report must have the method's metric keys;
- ``dist``: ``tools/dist_train.sh`` and ``tools/dist_test.sh`` with two
  processes (gloo on CPU); the 2-process test metrics must equal the
  1-process ones;
- ``amp``: ``tools/train.py --amp`` (bfloat16 autocast on CPU).

Every run must exit 0 with finite losses. ``tools/misc/rehearse.py`` is
the command line; the tests under ``tests/test_rehearsal`` run it in CI.
"""
import glob
import json
import math
import os
import os.path as osp
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from mmovl.utils import atomic_write_text

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG_DIR = osp.join(REPO, 'configs')
ALL_STEPS = ('train', 'resume', 'test', 'dist', 'amp')

CLIP_B16 = ('checkpoints/clip_vit_b16_openai.safetensors',
            'ViT-B-16-quickgelu')
CLIP_B32 = ('checkpoints/clip_vit_b32_openai.safetensors',
            'ViT-B-32-quickgelu')
CLIP_RN50 = ('checkpoints/clip_rn50_openai.safetensors', 'RN50-quickgelu')


class RehearsalError(RuntimeError):
    """A rehearsal step failed; the message says which and why."""


# -- what each config needs ------------------------------------------------
_CLS_LOADERS = dict(batch_size=2, num_workers=0, persistent_workers=False)


def _cls_options(train_batch: int = 2, test_batch: int = 4) -> dict:
    """Overrides of an epoch-based (mmpretrain) config: 2 epochs, tiny
    batches, workers in the main process (exact resume, see
    :class:`mmovl.engine.RNGStateHook`), a log line per iteration."""
    opts = {'train_cfg.max_epochs': 2,
            'default_hooks.logger.interval': 1,
            'log_processor.window_size': 1,  # each iteration's own time
            'randomness.seed': 0}
    for loader, batch in (('train_dataloader', train_batch),
                          ('val_dataloader', test_batch),
                          ('test_dataloader', test_batch)):
        opts.update({f'{loader}.batch_size': batch,
                     f'{loader}.num_workers': 0,
                     f'{loader}.persistent_workers': False})
    return opts


def _det_options(max_iters: int = 2) -> dict:
    """Overrides of an iteration-based (mmdet) config: ``max_iters``
    iterations of one image, a checkpoint every half, one data worker
    (the skipped batches of a resume come from the worker, not the main
    process's generators)."""
    opts = {'train_cfg.max_iters': max_iters,
            'train_cfg.val_interval': max_iters,
            'default_hooks.checkpoint.interval': max_iters // 2,
            'default_hooks.logger.interval': 1,
            'log_processor.window_size': 1,  # each iteration's own time
            'randomness.seed': 0,
            'train_dataloader.batch_size': 1,
            'train_dataloader.num_workers': 1,
            'train_dataloader.persistent_workers': True,
            # A detector a few iterations from random weights puts every
            # class far below the configs' score threshold (1e-4): the
            # background takes all (class scores ~1e-32 measured), so LVIS /
            # COCO evaluation would get no detection and report nothing.
            'model.test_cfg.rcnn.score_thr': 0.0}
    for loader in ('val_dataloader', 'test_dataloader'):
        opts.update({f'{loader}.batch_size': 1,
                     f'{loader}.num_workers': 0,
                     f'{loader}.persistent_workers': False})
    return opts


@dataclass
class Rehearsal:
    """How to rehearse one real config.

    Args:
        config: Path under ``configs/``.
        method: The method it belongs to (MKT, CPRFL, ViLD, UniCL).
        data: Names of the miniature data makers it needs.
        clip: ``(path, open_clip name)`` of the CLIP checkpoints it loads.
        extra: Other weights: ``'resnet101_in1k'``, ``'torchvision_resnet50'``.
        options: The ``--cfg-options`` of every run.
        metric_keys: Keys the test report must have.
        first_ckpt: The checkpoint the interrupted run is killed after.
        last_ckpt: The final checkpoint.
        prepare: Extra preparation, ``prepare(root, env)``, after the data and
            weights exist (e.g. ViLD's proposal embeddings).
        child: Python lines of a child config that inherits the real one
            (written to ``<root>/configs/``), for what ``--cfg-options``
            cannot say; None runs the real config itself.
        same_as: Name of a rehearsal whose config this one must equal
            setting for setting (an alias kept for a promised command
            line); checked before any run.
        validate_in_training: Whether the reference run keeps the
            config's validation (False for the detectors, whose test step
            runs the same evaluation: it saves CI minutes).
    """
    config: str
    method: str
    data: Tuple[str, ...]
    clip: Tuple[Tuple[str, str], ...]
    metric_keys: Tuple[str, ...]
    options: Dict[str, object] = field(default_factory=_cls_options)
    extra: Tuple[str, ...] = ()
    first_ckpt: str = 'epoch_1.pth'
    last_ckpt: str = 'epoch_2.pth'
    prepare: Optional[Callable[[str, dict], None]] = None
    child: Optional[str] = None
    same_as: Optional[str] = None
    validate_in_training: bool = True

    @property
    def name(self) -> str:
        return osp.splitext(osp.basename(self.config))[0]

    @property
    def config_path(self) -> str:
        return osp.join(CONFIG_DIR, self.config)

    def config_file(self, root: str) -> str:
        """The config the runs use: the real one, or its child in
        ``root``."""
        if self.child is None:
            return self.config_path
        module = 'mmovl.configs.' + self.config[:-3].replace('/', '.')
        path = osp.join(root, 'configs', f'{self.name}.py')
        text = ('from mmengine.config import read_base\n\n'
                'with read_base():\n'
                f'    from {module} import *  # noqa: F401,F403\n\n' +
                self.child.format(
                    names=_imagenet_names(IMAGENET_MINI_CLASSES)))
        if not osp.isfile(path) or open(path).read() != text:
            atomic_write_text(path, text)
        return path


def _imagenet_names(num: int) -> tuple:
    """The first ``num`` ImageNet class names (the miniature ImageNet's
    classes are the first wnids)."""
    from mmpretrain.datasets.categories import IMAGENET_CATEGORIES
    return tuple(IMAGENET_CATEGORIES[:num])


def _mkt_stage1_checkpoint(root: str, env: dict) -> None:
    """Stage 2 starts from stage 1's final checkpoint, where the stage-2
    config expects it: rehearse stage 1's training first if needed."""
    target = osp.join(root, 'work_dirs', 'mkt_vit_b16_20e_nuswide',
                      'epoch_20.pth')
    if osp.isfile(target):
        return
    stage1 = REHEARSALS['mkt_vit_b16_20e_nuswide']
    work_dir = osp.join(root, 'rehearsal', stage1.name, 'train')
    ckpt = osp.join(work_dir, stage1.last_ckpt)
    if not osp.isfile(ckpt):
        _train(stage1, root, env, work_dir)
    os.makedirs(osp.dirname(target), exist_ok=True)
    shutil.copyfile(ckpt, target)


def _vild_proposals(dataset_base: str, store: str):
    """Precompute the CLIP embeddings of proposals with the real tool, the
    proposals from the (random-weight) detector's own RPN."""

    def prepare(root: str, env: dict) -> None:
        out = osp.join(root, store)
        if osp.isfile(osp.join(out, 'index.json')):
            return
        rpn_cfg = osp.join(CONFIG_DIR,
                           'vild/vild_r50_fpn_32xb8_180k_lvis_v1_base.py')
        rpn_ckpt = osp.join(root, 'checkpoints', 'rehearsal_vild_rpn.pth')
        if not osp.isfile(rpn_ckpt):
            _run([sys.executable, '-c', _SAVE_DETECTOR, rpn_cfg, rpn_ckpt],
                 root, env, 'rpn checkpoint')
        _run([sys.executable,
              osp.join(REPO, 'tools/misc/precompute_vild_embeds.py'),
              rpn_cfg, rpn_ckpt,
              '--dataset-config', osp.join(CONFIG_DIR, dataset_base),
              '--clip-model', CLIP_B32[1], '--clip-checkpoint', CLIP_B32[0],
              '--out', out, '--num-proposals', '16', '--num-workers', '0',
              '--shard-size', '8'], root, env, 'precompute_vild_embeds')

    return prepare


# A detector's random initial weights as a checkpoint (the proposal model
# of the rehearsal's precompute step).
_SAVE_DETECTOR = '''
import sys, torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
import mmovl
from mmdet.registry import MODELS
cfg = Config.fromfile(sys.argv[1])
init_default_scope('mmdet')
torch.manual_seed(0)
model = MODELS.build(cfg.model)
model.init_weights()
torch.save(dict(meta=dict(), state_dict=model.state_dict()), sys.argv[2])
'''

# mmpretrain's ImageNet names all 1000 classes whatever the folder holds;
# the zero-shot evaluation encodes each with 12 templates through the
# (training) text tower, 12,000 sentences an evaluation: 15-35 min on
# 2 CPU cores (5.6 sentences/s measured under load). The miniature
# ImageNet's vocabulary is its own 5 classes (top-5 accuracy needs 5).
IMAGENET_MINI_CLASSES = 5
_UNICL_MINI_VOCABULARY = '''
# (the names are written out: a pure-Python config imports lazily)
_mini = dict(classes={names!r})
train_dataloader.dataset.label_sources[0].metainfo = _mini
val_dataloader.dataset.metainfo = _mini
test_dataloader.dataset.metainfo = _mini
'''

_MKT_KEYS = ('multi-label/zsl/mAP', 'multi-label/gzsl/mAP',
             'multi-label/zsl/F1@3', 'multi-label/gzsl/F1@3',
             'multi-label/zsl/F1@5', 'multi-label/gzsl/F1@5')
_LT_KEYS = ('multi-label/lt/mAP', 'multi-label/lt/head_mAP',
            'multi-label/lt/medium_mAP', 'multi-label/lt/tail_mAP',
            'multi-label/gzsl/F1@3')
_LVIS_KEYS = ('lvis/bbox_AP', 'lvis/bbox_APr', 'lvis/bbox_APc',
              'lvis/bbox_APf', 'lvis/segm_APr')
_OVCOCO_KEYS = ('coco/novel_ap50', 'coco/base_ap50')


def _vild_rehearsal(config: str, data: str,
                    metric_keys: Tuple[str, ...]) -> Rehearsal:
    """A ViLD config: 2 iterations on the LVIS or COCO miniature, with the
    CLIP proposal embeddings precomputed into the store its data base
    reads."""
    dataset_base, store = {
        'lvis': ('_base_/datasets/lvis_v1_ov.py',
                 'data/lvis_v1/vild_embeds/train'),
        'coco': ('_base_/datasets/coco_ov_48_17.py',
                 'data/coco/vild_embeds/train2017'),
    }[data]
    return Rehearsal(
        config, 'ViLD', (data, ), (CLIP_B32, ), metric_keys,
        options=_det_options(), extra=('torchvision_resnet50', ),
        first_ckpt='iter_1.pth', last_ckpt='iter_2.pth',
        validate_in_training=False,
        prepare=_vild_proposals(dataset_base, store))


REHEARSALS: Dict[str, Rehearsal] = {
    r.name: r
    for r in [
        Rehearsal('mkt/mkt_vit_b16_20e_nuswide.py', 'MKT', ('nus_wide', ),
                  (CLIP_B16, ), _MKT_KEYS),
        Rehearsal('mkt/vit-b16_nuswide.py', 'MKT', ('nus_wide', ),
                  (CLIP_B16, ), _MKT_KEYS, same_as='mkt_vit_b16_20e_nuswide'),
        Rehearsal('mkt/mkt_vit_b16_prompt_nuswide.py', 'MKT', ('nus_wide', ),
                  (CLIP_B16, ), _MKT_KEYS, prepare=_mkt_stage1_checkpoint),
        Rehearsal('mkt/mkt_vit_b16_20e_openimages.py', 'MKT',
                  ('open_images', ), (CLIP_B16, ), _MKT_KEYS),
        Rehearsal('cprfl/cprfl_r101_80e_coco_lt.py', 'CPRFL', ('coco', ),
                  (CLIP_RN50, ), _LT_KEYS, extra=('resnet101_in1k', )),
        Rehearsal('cprfl/cprfl_r101_80e_voc_lt.py', 'CPRFL', ('voc', ),
                  (CLIP_RN50, ), _LT_KEYS, extra=('resnet101_in1k', )),
        _vild_rehearsal('vild/vild_r50_fpn_32xb8_180k_lvis_v1_base.py',
                        'lvis', _LVIS_KEYS),
        _vild_rehearsal('vild/vild_ens_r50_fpn_32xb8_180k_lvis_v1_base.py',
                        'lvis', _LVIS_KEYS),
        _vild_rehearsal('vild/vild_r50_fpn_32xb8_180k_coco_ov_48_17.py',
                        'coco', _OVCOCO_KEYS),
        Rehearsal('unicl/unicl_vit_b16_32e_in1k.py', 'UniCL', ('imagenet', ),
                  (), ('accuracy/top1', 'accuracy/top5'),
                  child=_UNICL_MINI_VOCABULARY),
    ]
}


def real_configs() -> List[str]:
    """Every config under ``configs/`` that is not a toy config, a base or
    a baseline of the toy world (paths relative to ``configs/``)."""
    found = []
    for path in sorted(glob.glob(osp.join(CONFIG_DIR, '*', '*.py'))):
        rel = osp.relpath(path, CONFIG_DIR)
        if rel.startswith('_base_') or 'toy' in osp.basename(rel):
            continue
        found.append(rel)
    return found


# -- preparing the scratch folder -----------------------------------------
# name -> (module, function, folder under the root, sizes). A few images
# per split: each iteration at the real sizes costs seconds on a CPU.
_DATA_MAKERS = {
    'nus_wide': ('mini_cls', 'make_nus_wide', 'data/nus_wide',
                 dict(num_train=8, num_test=8)),
    'open_images': ('mini_cls', 'make_open_images', 'data/openimages',
                    dict(num_train=8, num_test=8)),
    'imagenet': ('mini_cls', 'make_imagenet', 'data/imagenet',
                 dict(num_classes=IMAGENET_MINI_CLASSES, train_per_class=2,
                      val_per_class=1)),
    'coco': ('mini_det', 'make_coco', 'data/coco',
             dict(num_train=10, num_val=5)),
    'voc': ('mini_det', 'make_voc', 'data/voc',
            dict(num_trainval=10, num_test=8)),
    'lvis': ('mini_det', 'make_lvis', 'data/lvis_v1',
             dict(num_train=8, num_val=6)),  # all 12 categories
}


def make_env(root: str, threads: Optional[int] = None) -> dict:
    """The environment of every run: mmovl importable, downloads looked up
    in the scratch folder's ``torch_home`` (never the user's cache), no
    GPU unless ``MMOVL_REHEARSAL_DEVICE=cuda``."""
    env = dict(os.environ)
    env['PYTHONPATH'] = REPO + os.pathsep + env.get('PYTHONPATH', '')
    env['PYTHON'] = sys.executable
    env['TORCH_HOME'] = osp.join(root, 'torch_home')
    if env.get('MMOVL_REHEARSAL_DEVICE', 'cpu') == 'cpu':
        env['CUDA_VISIBLE_DEVICES'] = ''
    if threads:
        env['OMP_NUM_THREADS'] = str(threads)
    return env


def prepare(rehearsal: Rehearsal, root: str, env: dict) -> None:
    """Fill ``root`` with what ``rehearsal``'s config reads (idempotent)."""
    import importlib

    from mmovl.testing import random_weights

    for name in rehearsal.data:
        module, func, rel, sizes = _DATA_MAKERS[name]
        stamp = osp.join(root, rel, '.rehearsal-done')
        if osp.isfile(stamp):
            continue
        maker = getattr(
            importlib.import_module(f'mmovl.testing.{module}'), func)
        maker(osp.join(root, rel), **sizes)
        with open(stamp, 'w') as f:
            f.write('ok\n')
    for path, model_name in rehearsal.clip:
        random_weights.write_open_clip_checkpoint(osp.join(root, path),
                                                  model_name)
    if 'resnet101_in1k' in rehearsal.extra:
        random_weights.write_mmpretrain_resnet_checkpoint(
            osp.join(root, 'checkpoints', 'resnet101_in1k.pth'), depth=101)
    if 'torchvision_resnet50' in rehearsal.extra:
        random_weights.write_torchvision_checkpoint(
            env['TORCH_HOME'], 'resnet50')
    if rehearsal.prepare is not None:
        rehearsal.prepare(root, env)


# -- running the tools -----------------------------------------------------
@dataclass
class RunResult:
    """What one tool run gave."""
    seconds: float
    max_rss_mb: float
    log: str


def _options(opts: Dict[str, object]) -> List[str]:
    if not opts:
        return []
    return ['--cfg-options'] + [f'{k}={v}' for k, v in opts.items()]


def _run(cmd: Sequence[str], cwd: str, env: dict, what: str,
         log_path: Optional[str] = None,
         kill_when: Optional[Callable[[], bool]] = None,
         timeout: float = 3600) -> RunResult:
    """Run ``cmd``; raise :class:`RehearsalError` with the output's tail if
    it fails. ``kill_when``: polled every 0.5 s, SIGKILLs the run's process
    group once true (the run then counts as done)."""
    log_path = log_path or osp.join(cwd, 'rehearsal', 'last_run.log')
    os.makedirs(osp.dirname(log_path), exist_ok=True)
    start = time.time()
    with open(log_path, 'w') as log:
        proc = subprocess.Popen(
            list(cmd), cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
        killed = False
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if kill_when is not None and kill_when():
                os.killpg(proc.pid, signal.SIGKILL)
                killed = True
            if time.time() - start > timeout:
                os.killpg(proc.pid, signal.SIGKILL)
                raise RehearsalError(f'{what}: no end after {timeout} s; '
                                     f'log: {log_path}')
            time.sleep(0.5)
    seconds = time.time() - start
    code = os.waitstatus_to_exitcode(status)
    with open(log_path, errors='replace') as f:
        text = f.read()
    if code != 0 and not killed:
        raise RehearsalError(f'{what} exited {code}:\n  {" ".join(cmd)}\n'
                             f'--- last lines of {log_path} ---\n'
                             f'{text[-6000:]}')
    if killed and kill_when is not None:
        _reap_group(proc.pid)
    # ru_maxrss is in KiB on Linux.
    return RunResult(seconds, usage.ru_maxrss / 1024, text)


def _reap_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _free_port() -> str:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return str(s.getsockname()[1])


def _tool(name: str) -> str:
    return osp.join(REPO, 'tools', name)


def _train_options(rehearsal: Rehearsal, extra: Sequence[str]) -> dict:
    # --no-validate removes the val loader, whose overrides then have
    # nothing to merge into.
    if '--no-validate' not in extra:
        return rehearsal.options
    return {k: v for k, v in rehearsal.options.items()
            if not k.startswith('val_dataloader.')}


def _train(rehearsal: Rehearsal, root: str, env: dict, work_dir: str,
           extra: Sequence[str] = (), **kwargs) -> RunResult:
    # --auto-scale-lr: the configs' learning rates are for their full batch
    # (256 images for ViLD); at the rehearsal's batch they diverge.
    cmd = [sys.executable, _tool('train.py'), rehearsal.config_file(root),
           '--work-dir', work_dir, '--auto-scale-lr', *extra
           ] + _options(_train_options(rehearsal, extra))
    return _run(cmd, root, env, f'{rehearsal.name}: train {" ".join(extra)}',
                osp.join(work_dir + '.log'), **kwargs)


def _test(rehearsal: Rehearsal, root: str, env: dict, ckpt: str,
          work_dir: str, gpus: int = 1) -> Tuple[dict, RunResult]:
    opts = _options({k: v for k, v in rehearsal.options.items()
                     if k.startswith(('test_dataloader', 'randomness'))})
    if gpus == 1:
        cmd = [sys.executable, _tool('test.py'), rehearsal.config_file(root),
               ckpt, '--work-dir', work_dir] + opts
    else:
        cmd = ['bash', _tool('dist_test.sh'), rehearsal.config_file(root),
               ckpt,
               str(gpus), '--work-dir', work_dir] + opts
        env = dict(env, PORT=_free_port())
    result = _run(cmd, root, env, f'{rehearsal.name}: test ({gpus} proc)',
                  work_dir + '.log')
    return read_test_metrics(work_dir), result


def read_test_metrics(work_dir: str) -> dict:
    """The metrics ``tools/test.py`` wrote to ``<work_dir>/<time>/<time>
    .json`` (the newest run's)."""
    found = sorted(p for p in glob.glob(osp.join(work_dir, '*', '*.json'))
                   if osp.basename(osp.dirname(p)) ==
                   osp.splitext(osp.basename(p))[0])
    if not found:
        raise RehearsalError(f'no test metrics json in {work_dir}')
    with open(found[-1]) as f:
        return json.load(f)


def read_losses(work_dir: str) -> List[Dict[str, float]]:
    """Every logged training iteration's loss values (``vis_data/
    scalars.json`` of each run in ``work_dir``)."""
    rows = []
    for path in sorted(glob.glob(osp.join(work_dir, '*', 'vis_data',
                                          'scalars.json'))):
        with open(path) as f:
            for line in f:
                row = json.loads(line)
                losses = {k: v for k, v in row.items()
                          if k.startswith('loss') or k.endswith('loss')}
                if losses:
                    rows.append(dict(losses, iter=row.get('iter'),
                                     time=row.get('time')))
    return rows


def check_losses(work_dir: str, what: str) -> List[Dict[str, float]]:
    """Raise unless the runs in ``work_dir`` logged losses, all finite."""
    rows = read_losses(work_dir)
    if not rows:
        raise RehearsalError(f'{what}: no loss logged in {work_dir}')
    for row in rows:
        for key, value in row.items():
            if key in ('iter', 'time'):
                continue
            if value is None or not math.isfinite(value):
                raise RehearsalError(
                    f'{what}: {key} = {value} at iteration {row["iter"]}')
    return rows


def max_weight_diff(ckpt_a: str, ckpt_b: str) -> Tuple[float, str]:
    """The largest absolute difference between two checkpoints' weights,
    and the name of the tensor where it is (keys must match)."""
    import torch

    from mmovl.utils import safe_torch_load
    a = safe_torch_load(ckpt_a, map_location='cpu')['state_dict']
    b = safe_torch_load(ckpt_b, map_location='cpu')['state_dict']
    if set(a) != set(b):
        raise RehearsalError(
            f'{ckpt_a} and {ckpt_b} hold different keys: '
            f'{sorted(set(a) ^ set(b))[:5]}')
    worst, where = 0.0, ''
    for key, value in a.items():
        if not torch.is_tensor(value) or not value.is_floating_point():
            if torch.is_tensor(value) and not torch.equal(value, b[key]):
                return math.inf, key
            continue
        diff = (value.double() - b[key].double()).abs().max().item() \
            if value.numel() else 0.0
        if diff > worst or math.isnan(diff):
            worst, where = diff, key
    return worst, where


def metrics_differ(a: dict, b: dict, keys: Sequence[str],
                   tol: float = 1e-3) -> List[str]:
    """The metric keys on which two reports differ by more than ``tol``
    (metrics are percentages or fractions; NaN equals NaN)."""
    bad = []
    for key in keys:
        x, y = a.get(key), b.get(key)
        if x is None or y is None:
            bad.append(f'{key}: {x} vs {y}')
        elif not (x == y or (math.isnan(x) and math.isnan(y))
                  or abs(x - y) <= tol):
            bad.append(f'{key}: {x} vs {y}')
    return bad


def _drop_checkpoints(work_dir: str) -> None:
    """Remove a checked run's checkpoints (hundreds of MB each at the real
    sizes); its logs stay."""
    for path in glob.glob(osp.join(work_dir, '*.pth')):
        os.remove(path)


def _first_checkpoint_written(work_dir: str, name: str) -> Callable[[], bool]:
    # mmengine writes `last_checkpoint` after the checkpoint file itself.
    def done() -> bool:
        last = osp.join(work_dir, 'last_checkpoint')
        return osp.isfile(osp.join(work_dir, name)) and osp.isfile(last)

    return done


def check_same_settings(a: Rehearsal, b: Rehearsal) -> None:
    """Raise unless the configs of ``a`` and ``b`` hold the same settings
    (every key and value, the file names aside)."""
    from mmengine.config import Config
    da = Config.fromfile(a.config_path).to_dict()
    db = Config.fromfile(b.config_path).to_dict()
    if da != db:
        keys = sorted(k for k in set(da) | set(db) if da.get(k) != db.get(k))
        raise RehearsalError(f'{a.config} should equal {b.config} but '
                             f'differs in {keys}')


# -- the rehearsal ---------------------------------------------------------
@dataclass
class Report:
    """What a rehearsal measured, for the closing note and the sizing
    table."""
    name: str
    steps: Dict[str, str] = field(default_factory=dict)
    metrics: Dict[str, float] = field(default_factory=dict)
    figures: Dict[str, object] = field(default_factory=dict)
    step_seconds: Dict[str, int] = field(default_factory=dict)
    clock: float = field(default_factory=time.time)


def _note(report: Report, step: str, text: str, verbose: bool) -> None:
    now = time.time()
    seconds = now - report.clock
    report.clock = now
    report.step_seconds[step] = round(seconds)
    report.steps[step] = text
    if verbose:
        print(f'[rehearse] {report.name}: {step} ({seconds:.0f} s): {text}',
              flush=True)


def rehearse(rehearsal: Rehearsal, root: str,
             steps: Sequence[str] = ALL_STEPS, verbose: bool = True,
             weight_tol: float = 0.0,
             keep_checkpoints: bool = True) -> Report:
    """Run ``steps`` of one rehearsal in the scratch folder ``root``;
    raise :class:`RehearsalError` at the first failed check.

    With ``keep_checkpoints=False`` the reference run's checkpoints are
    removed at the end (a scratch folder that is not kept: at the real
    sizes they take gigabytes); a later call trains again."""
    unknown = set(steps) - set(ALL_STEPS)
    if unknown:
        raise ValueError(f'unknown steps {sorted(unknown)}; '
                         f'choose from {ALL_STEPS}')
    root = osp.abspath(root)
    env = make_env(root)
    report = Report(rehearsal.name)
    if rehearsal.same_as is not None:
        check_same_settings(rehearsal, REHEARSALS[rehearsal.same_as])
        _note(report, 'same_as', f'settings equal to {rehearsal.same_as}',
              verbose)
    t0 = time.time()
    prepare(rehearsal, root, env)
    _note(report, 'prepare', f'{time.time() - t0:.0f} s', verbose)

    base = osp.join(root, 'rehearsal', rehearsal.name)
    ref_dir = osp.join(base, 'train')
    ref_ckpt = osp.join(ref_dir, rehearsal.last_ckpt)
    need_ref = any(s in steps for s in ('train', 'resume', 'test', 'dist'))
    if need_ref and not osp.isfile(ref_ckpt):
        if osp.isdir(ref_dir):
            shutil.rmtree(ref_dir)
        result = _train(
            rehearsal, root, env, ref_dir,
            extra=[] if rehearsal.validate_in_training else ['--no-validate'])
        rows = check_losses(ref_dir, f'{rehearsal.name}: train')
        times = [r['time'] for r in rows[1:] if r.get('time') is not None]
        report.figures.update(
            train_s=round(result.seconds, 1),
            s_per_iter=round(sorted(times)[len(times) // 2], 2)
            if times else None,
            peak_rss_gb=round(result.max_rss_mb / 1024, 2),
            final_loss=rows[-1].get('loss'))
        atomic_write_text(osp.join(base, 'train_figures.json'),
                          json.dumps(report.figures))
    elif osp.isfile(osp.join(base, 'train_figures.json')):
        with open(osp.join(base, 'train_figures.json')) as f:
            report.figures.update(json.load(f))  # from the run made before
    if not osp.isfile(ref_ckpt):
        raise RehearsalError(f'{rehearsal.name}: training wrote no '
                             f'{ref_ckpt}')
    _note(report, 'train', f'exit 0, finite losses, {report.figures}',
          verbose)

    if 'resume' in steps:
        res_dir = osp.join(base, 'resume')
        if osp.isdir(res_dir):
            shutil.rmtree(res_dir)
        _train(rehearsal, root, env, res_dir, extra=['--no-validate'],
               kill_when=_first_checkpoint_written(res_dir,
                                                   rehearsal.first_ckpt))
        if osp.isfile(osp.join(res_dir, rehearsal.last_ckpt)):
            raise RehearsalError(
                f'{rehearsal.name}: the run to interrupt finished before '
                f'it was killed')
        _train(rehearsal, root, env, res_dir,
               extra=['--resume', '--no-validate'])
        check_losses(res_dir, f'{rehearsal.name}: resume')
        diff, where = max_weight_diff(ref_ckpt,
                                      osp.join(res_dir, rehearsal.last_ckpt))
        if not diff <= weight_tol:
            raise RehearsalError(
                f'{rehearsal.name}: resumed weights differ from the '
                f'uninterrupted run by {diff:.3g} (in {where})')
        report.figures['resume_max_diff'] = diff
        _drop_checkpoints(res_dir)
        _note(report, 'resume', f'killed after {rehearsal.first_ckpt}, '
              f'resumed; weights equal (max |diff| {diff:.3g})', verbose)

    if 'test' in steps or 'dist' in steps:
        metrics, result = _test(rehearsal, root, env, ref_ckpt,
                                osp.join(base, 'test'))
        missing = [k for k in rehearsal.metric_keys if k not in metrics]
        if missing:
            raise RehearsalError(
                f'{rehearsal.name}: the test report lacks {missing}; it has '
                f'{sorted(metrics)}')
        report.metrics = metrics
        report.figures['test_s'] = round(result.seconds, 1)
        _note(report, 'test', ', '.join(
            f'{k} {metrics[k]:.4g}' for k in rehearsal.metric_keys), verbose)

    if 'dist' in steps:
        dist_dir = osp.join(base, 'dist_train')
        if osp.isdir(dist_dir):
            shutil.rmtree(dist_dir)
        cmd = ['bash', _tool('dist_train.sh'), rehearsal.config_file(root),
               '2', '--work-dir', dist_dir, '--auto-scale-lr',
               '--no-validate'
               ] + _options(_train_options(rehearsal, ['--no-validate']))
        _run(cmd, root, dict(env, PORT=_free_port()),
             f'{rehearsal.name}: dist_train (2 proc)', dist_dir + '.log')
        check_losses(dist_dir, f'{rehearsal.name}: dist_train')
        if not osp.isfile(osp.join(dist_dir, rehearsal.last_ckpt)):
            raise RehearsalError(f'{rehearsal.name}: dist_train wrote no '
                                 f'{rehearsal.last_ckpt}')
        _drop_checkpoints(dist_dir)
        dist_metrics, _ = _test(rehearsal, root, env, ref_ckpt,
                                osp.join(base, 'dist_test'), gpus=2)
        bad = metrics_differ(report.metrics, dist_metrics,
                             rehearsal.metric_keys)
        if bad:
            raise RehearsalError(
                f'{rehearsal.name}: 2-process test metrics differ from '
                f'1-process: {bad}')
        _note(report, 'dist', '2-process train exit 0, finite losses; '
              '2-process test metrics equal 1-process', verbose)

    if 'amp' in steps:
        amp_dir = osp.join(base, 'amp')
        if osp.isdir(amp_dir):
            shutil.rmtree(amp_dir)
        result = _train(rehearsal, root, env, amp_dir,
                        extra=['--amp', '--no-validate'])
        rows = check_losses(amp_dir, f'{rehearsal.name}: --amp')
        report.figures['amp_final_loss'] = rows[-1].get('loss')
        _drop_checkpoints(amp_dir)
        _note(report, 'amp', f'exit 0 in {result.seconds:.0f} s, finite '
              f'losses (last {rows[-1].get("loss")})', verbose)
    if not keep_checkpoints:
        if rehearsal.name == 'mkt_vit_b16_20e_nuswide':
            # Stage 2's rehearsal starts from this run: keep its copy.
            _mkt_stage1_checkpoint(root, env)
        _drop_checkpoints(ref_dir)
        if osp.isfile(osp.join(ref_dir, 'last_checkpoint')):
            os.remove(osp.join(ref_dir, 'last_checkpoint'))
    return report
