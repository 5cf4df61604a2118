# Copyright (c) mmovl contributors. All rights reserved.
# Runtime of mmovl's MMDetection-based configs: mmdet's dict-style
# default_runtime in the read_base() style (the two styles cannot share an
# inheritance chain, and mmdet's wheel ships only the dict style).
from mmdet.engine.hooks import DetVisualizationHook
from mmdet.visualization import DetLocalVisualizer
from mmengine.hooks import (CheckpointHook, DistSamplerSeedHook, IterTimerHook,
                            LoggerHook, ParamSchedulerHook)
from mmengine.runner import LogProcessor
from mmengine.visualization import LocalVisBackend

from mmovl.engine.hooks import FiniteCheckHook, RNGStateHook
from mmovl.utils.atomic_backend import ATOMIC_LOCAL_BACKEND

default_scope = 'mmdet'

default_hooks = dict(
    timer=dict(type=IterTimerHook),
    logger=dict(type=LoggerHook, interval=50),
    param_scheduler=dict(type=ParamSchedulerHook),
    checkpoint=dict(type=CheckpointHook, interval=1,
                    # written atomically: a run killed while saving leaves
                    # the previous checkpoint, never a truncated one
                    backend_args=dict(backend=ATOMIC_LOCAL_BACKEND)),
    sampler_seed=dict(type=DistSamplerSeedHook),
    # Random generator states in checkpoints: --resume continues exactly.
    rng_state=dict(type=RNGStateHook),
    # Non-finite weights loaded or a non-finite loss stop the run, named.
    finite_check=dict(type=FiniteCheckHook),
    visualization=dict(type=DetVisualizationHook))

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),
)

vis_backends = [dict(type=LocalVisBackend)]
visualizer = dict(
    type=DetLocalVisualizer, vis_backends=vis_backends, name='visualizer')
log_processor = dict(type=LogProcessor, window_size=50, by_epoch=True)

log_level = 'INFO'
load_from = None
resume = False
