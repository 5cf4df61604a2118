# Copyright (c) mmovl contributors. All rights reserved.
from .open_clip_vit import OpenCLIPViT

__all__ = ['OpenCLIPViT']
