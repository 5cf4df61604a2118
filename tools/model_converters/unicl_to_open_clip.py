# Copyright (c) mmovl contributors. All rights reserved.
"""Export the open_clip weights of a trained UniCL model.

    python tools/model_converters/unicl_to_open_clip.py \
        work_dirs/unicl_toy_vit_p8_10e_toy/epoch_10.pth toy_clip.safetensors

The output is a plain open_clip state dict (.safetensors, or a torch file
for any other suffix) that ``CLIPTeacher(model_name=..., checkpoint=OUT)``
and ``open_clip.create_model(..., pretrained=OUT)`` load like any released
CLIP checkpoint.
"""
import argparse

import torch
from safetensors.torch import save_file

from mmovl.utils import atomic_write, safe_torch_load


def convert(src: str, dst: str, prefix: str = 'clip.') -> int:
    ckpt = safe_torch_load(src, map_location='cpu')
    state = ckpt.get('state_dict', ckpt)
    weights = {
        k[len(prefix):]: v.contiguous()
        for k, v in state.items() if k.startswith(prefix)
    }
    if not weights:
        raise ValueError(f'{src} has no "{prefix}*" weights: is it a UniCL '
                         'checkpoint?')
    if dst.endswith('.safetensors'):
        atomic_write(dst, lambda tmp: save_file(
            weights, tmp, metadata={'format': 'pt', 'source': src}))
    else:
        atomic_write(dst, lambda tmp: torch.save(weights, tmp))
    return len(weights)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='UniCL checkpoint (mmengine format)')
    parser.add_argument('dst', help='output .safetensors (or .pt) file')
    args = parser.parse_args()
    n = convert(args.src, args.dst)
    print(f'wrote {n} tensors to {args.dst}')


if __name__ == '__main__':
    main()
