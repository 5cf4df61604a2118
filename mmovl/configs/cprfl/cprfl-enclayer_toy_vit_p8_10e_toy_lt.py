# Copyright (c) mmovl contributors. All rights reserved.
# mmovl's earlier CPRFL head on the long-tailed toy world, kept to compare
# with the authors' model (cprfl_toy_vit_p8_10e_toy_lt.py, same backbone,
# data and schedule): the VSI is PyTorch's standard encoder layer (residual
# connections, here pre-norm, ReLU, 4 heads of d / 4, FFN 2d), PI's output
# layer starts small (N(0, 0.02), so that the residual's image-independent
# <p, p> term starts near 0), the label embeddings come from the frozen toy
# CLIP teacher (unit vectors, cached) and the ASL is mmpretrain's (its
# focusing weight differentiated).
from mmengine.config import read_base

with read_base():
    from .cprfl_toy_vit_p8_10e_toy_lt import *  # noqa: F401,F403

from mmpretrain.models import AsymmetricLoss

model.update(train_text_encoder=False)
model['head'] = dict(
    type=CPRFLHead,
    in_channels=128,
    embed_dims=128,
    vsi_type='encoder_layer',
    num_heads=4,
    feedforward_channels=256,
    # pre-norm VSI: 31.2 lt/mAP vs 27.4 post-norm on this toy
    # (bench/README.md)
    norm_first=True,
    prompt_init_std=0.02,
    loss=dict(
        type=AsymmetricLoss,
        gamma_pos=0.0,
        gamma_neg=4.0,
        clip=0.05,
        use_sigmoid=True))
optim_wrapper['paramwise_cfg'] = dict(
    custom_keys={'backbone': dict(lr_mult=0.1)})
