# Copyright (c) mmovl contributors. All rights reserved.
"""Export an open-vocabulary classifier (MKT, CPRFL, UniCL) to ONNX, with
the vocabulary as an input.

    python tools/deployment/export_onnx.py \\
        configs/mkt/mkt_toy_vit_p8_10e_toy.py CKPT work_dirs/mkt.onnx \\
        --text work_dirs/mkt_text.onnx --check

The image graph takes ``image`` (N, 3, H, W) float32, 0-255 in the channel
order of the config's test pipeline (BGR for images read by mmcv; the
graph does the data preprocessor's flip to RGB and mean / std), and
``label_embeds`` (C, D) float32; it returns ``scores`` (N, C), the model's
``pred_score``. N and C are dynamic. The text graph (``--text``) takes
``tokens`` (P, L) int64 from open_clip's tokenizer and returns one embedding
per prompt; ``mmovl.deployment.label_embeds_from_names`` turns label names
into ``label_embeds`` with it (templates and averaging as the model does).
``--check`` runs both graphs with onnxruntime against PyTorch and prints
the largest absolute differences. See README.md, "Deployment (ONNX)".
"""
import argparse
import os.path as osp
from typing import List, Optional, Tuple

import numpy as np
import torch
from mmengine.config import Config, DictAction

import mmovl  # noqa: F401  (registers mmovl's components)
from mmovl.deployment import (DEFAULT_OPSET, build_classifier,
                              export_cls_onnx, export_text_onnx,
                              label_embeds_from_names, model_image_size,
                              model_label_embeds)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description='Export an open-vocabulary classifier to ONNX with the '
        'label embeddings as an input.')
    p.add_argument('config', help='the model config')
    p.add_argument('checkpoint', help='the trained checkpoint')
    p.add_argument('out', help='the image graph to write (.onnx)')
    p.add_argument(
        '--text', metavar='OUT_TEXT', help='also write the text graph here')
    p.add_argument(
        '--image-size',
        type=int,
        nargs=2,
        metavar=('H', 'W'),
        help='input size (default: the ViT\'s own, else the test '
        'pipeline\'s crop)')
    p.add_argument(
        '--normalized-input',
        action='store_true',
        help='take images already normalised by the data preprocessor '
        '(default: 0-255, normalised in the graph)')
    p.add_argument('--opset', type=int, default=DEFAULT_OPSET)
    p.add_argument(
        '--legacy-exporter',
        action='store_true',
        help='torch.onnx\'s TorchScript tracer (deprecated by torch, faster '
        'to run) instead of its torch.export-based default')
    p.add_argument(
        '--check',
        action='store_true',
        help='compare the graphs with PyTorch on random images with '
        'onnxruntime')
    p.add_argument(
        '--labels',
        help='comma-separated label names for --check (default: the '
        'classes the checkpoint stores)')
    p.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings')
    return p.parse_args(argv)


def pipeline_image_size(cfg: Config) -> Optional[Tuple[int, int]]:
    """The (H, W) the config's test pipeline ends with: its last crop, else
    its last fixed-size resize; None if it has neither."""
    loader = cfg.get('test_dataloader') or {}
    pipeline = (loader.get('dataset') or {}).get('pipeline') or []
    size = None
    for step in pipeline:
        step_type = step.get('type')
        name = getattr(step_type, '__name__', str(step_type))
        if 'Crop' in name and step.get('crop_size') is not None:
            size = step['crop_size']
        elif name == 'Resize' and step.get('scale') is not None:
            size = step['scale']
    if size is None:
        return None
    if isinstance(size, int):
        return size, size
    # mmcv / mmpretrain give (w, h)
    return int(size[1]), int(size[0])


def check(model, image_file: str, text_file: Optional[str],
          names: List[str], image_size: Tuple[int, int],
          normalized_input: bool) -> dict:
    """Largest |onnxruntime - PyTorch| of the scores (and label
    embeddings) on random images."""
    import onnxruntime as ort
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(
        0, 256, (3, 3, *image_size), generator=gen, dtype=torch.uint8)
    inputs = model.data_preprocessor({'inputs': images}, False)['inputs']
    embeds = model_label_embeds(model, names)
    with torch.no_grad():
        expected = torch.stack(
            [s.pred_score for s in model.predict(inputs)]).numpy()
    feed = inputs if normalized_input else images.float()
    session = ort.InferenceSession(
        image_file, providers=['CPUExecutionProvider'])
    scores = session.run(['scores'], {
        'image': feed.numpy(),
        'label_embeds': embeds.numpy()
    })[0]
    diffs = dict(scores=float(np.abs(scores - expected).max()))
    if text_file is not None:
        got = label_embeds_from_names(text_file, names)
        diffs['label_embeds'] = float(np.abs(got - embeds.numpy()).max())
    return diffs


def main(argv: Optional[List[str]] = None) -> dict:
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    model, meta = build_classifier(cfg, args.checkpoint, return_meta=True)
    image_size = (args.image_size or model_image_size(model)
                  or pipeline_image_size(cfg))
    export_cls_onnx(
        model,
        args.out,
        image_size=image_size,
        include_preprocessor=not args.normalized_input,
        opset=args.opset,
        dynamo=not args.legacy_exporter)
    print(f'image graph: {args.out}')
    if args.text:
        teacher = cfg.model.get('teacher') or {}
        export_text_onnx(
            model,
            args.text,
            tokenizer_name=teacher.get('model_name'),
            opset=args.opset,
            dynamo=not args.legacy_exporter)
        print(f'text graph: {args.text}')
    diffs = {}
    if args.check:
        if args.labels:
            names = [n.strip() for n in args.labels.split(',') if n.strip()]
        else:
            names = list((meta.get('dataset_meta') or {}).get('classes')
                         or [])
        if len(names) < 2:
            raise SystemExit('--check needs at least two label names: give '
                             '--labels (the checkpoint stores no classes).')
        diffs = check(model, args.out, args.text, names, tuple(image_size),
                      args.normalized_input)
        for key, value in diffs.items():
            print(f'max |onnxruntime - PyTorch| of {key} '
                  f'({len(names)} labels): {value:.3g}')
    return dict(out=osp.abspath(args.out), diffs=diffs)


if __name__ == '__main__':
    main()
