# Copyright (c) mmovl contributors. All rights reserved.
# Runtime of mmovl's MMPretrain-based configs. (mmpretrain 1.2.0's wheel
# ships no pure-Python configs to inherit, so this mirrors its dict-style
# default_runtime in the read_base() style.)
from mmengine.hooks import (CheckpointHook, DistSamplerSeedHook, IterTimerHook,
                            LoggerHook, ParamSchedulerHook)
from mmengine.visualization import LocalVisBackend
from mmpretrain.engine.hooks import VisualizationHook
from mmpretrain.visualization import UniversalVisualizer

from mmovl.engine.hooks import FiniteCheckHook, RNGStateHook
from mmovl.utils.atomic_backend import ATOMIC_LOCAL_BACKEND

default_scope = 'mmpretrain'

default_hooks = dict(
    timer=dict(type=IterTimerHook),
    logger=dict(type=LoggerHook, interval=50),
    param_scheduler=dict(type=ParamSchedulerHook),
    checkpoint=dict(type=CheckpointHook, interval=1, max_keep_ckpts=3,
                    # written atomically: a run killed while saving leaves
                    # the previous checkpoint, never a truncated one
                    backend_args=dict(backend=ATOMIC_LOCAL_BACKEND)),
    sampler_seed=dict(type=DistSamplerSeedHook),
    # Random generator states in checkpoints: --resume continues exactly.
    rng_state=dict(type=RNGStateHook),
    # Non-finite weights loaded or a non-finite loss stop the run, named.
    finite_check=dict(type=FiniteCheckHook),
    visualization=dict(type=VisualizationHook, enable=False),
)

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),
)

vis_backends = [dict(type=LocalVisBackend)]
visualizer = dict(type=UniversalVisualizer, vis_backends=vis_backends)

log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=None, deterministic=False)
