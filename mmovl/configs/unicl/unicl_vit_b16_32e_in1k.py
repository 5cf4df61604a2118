# Copyright (c) mmovl contributors. All rights reserved.
# UniCL on ImageNet-1K image-label data (the paper's IN-1K setting), from
# scratch, with an optional image-text source: uncomment `text_sources` to
# add e.g. a CC3M-style CSV of `filepath,title` pairs (the paper's
# IN-1K + GCC settings). Validation is zero-shot ImageNet classification
# with the class names through the prompt ensemble.
from mmcv.transforms import LoadImageFromFile
from mmengine.config import read_base
from mmengine.dataset import DefaultSampler

with read_base():
    from .._base_.clip_preprocessor import *  # noqa: F401,F403
    from .._base_.default_runtime_cls import *  # noqa: F401,F403

from mmengine.optim import CosineAnnealingLR, LinearLR, OptimWrapper
from mmpretrain.datasets import (ImageNet, PackInputs, RandomFlip,
                                 RandomResizedCrop, ResizeEdge, CenterCrop)
from mmpretrain.evaluation import Accuracy
from torch.optim import AdamW

from mmovl.datasets import CsvCaptionPairs, UniCLDataset  # noqa: F401
from mmovl.datasets.transforms import PromptText
from mmovl.engine import VocabularyHook
from mmovl.models import UniCL, UniCLLoss

data_root = 'data/imagenet'
data_preprocessor = dict(**clip_data_preprocessor)

train_dataloader = dict(
    batch_size=128,  # x 32 GPUs = 4096, the paper's batch
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type=DefaultSampler, shuffle=True),
    dataset=dict(
        type=UniCLDataset,
        label_sources=[
            dict(type=ImageNet, data_root=data_root, split='train')
        ],
        # text_sources=[
        #     dict(type=CsvCaptionPairs, data_root='data/gcc3m',
        #          ann_file='train.csv', data_prefix='images')
        # ],
        pipeline=[
            dict(type=LoadImageFromFile),
            dict(type=RandomResizedCrop, scale=224),
            dict(type=RandomFlip, prob=0.5, direction='horizontal'),
            dict(type=PromptText, templates='ensemble'),
            dict(type=PackInputs, algorithm_keys=('text', )),
        ]))
val_dataloader = dict(
    batch_size=128,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type=DefaultSampler, shuffle=False),
    dataset=dict(
        type=ImageNet,
        data_root=data_root,
        split='val',
        pipeline=[
            dict(type=LoadImageFromFile),
            dict(type=ResizeEdge, scale=256, edge='short'),
            dict(type=CenterCrop, crop_size=224),
            dict(type=PackInputs),
        ]))
test_dataloader = val_dataloader
val_evaluator = dict(type=Accuracy, topk=(1, 5))
test_evaluator = val_evaluator

model = dict(
    type=UniCL,
    model_name='ViT-B-16',
    loss=dict(type=UniCLLoss),
    templates='ensemble',
    data_preprocessor=data_preprocessor)

max_epochs = 32
optim_wrapper = dict(
    type=OptimWrapper,
    optimizer=dict(
        type=AdamW, lr=5e-4, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.1),
    paramwise_cfg=dict(
        norm_decay_mult=0.0,
        bias_decay_mult=0.0,
        custom_keys={
            'logit_scale': dict(decay_mult=0.0),
            'positional_embedding': dict(decay_mult=0.0),
            'class_embedding': dict(decay_mult=0.0),
            'token_embedding': dict(decay_mult=0.0),
        }),
    clip_grad=dict(max_norm=5.0))
param_scheduler = [
    dict(type=LinearLR, start_factor=1e-3, by_epoch=True, begin=0, end=5,
         convert_to_iter_based=True),
    dict(type=CosineAnnealingLR, eta_min=1e-6, by_epoch=True, begin=5,
         end=max_epochs, convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=4)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=4096)
custom_hooks = [dict(type=VocabularyHook, train=False)]
