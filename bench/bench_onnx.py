# Copyright (c) mmovl contributors. All rights reserved.
"""onnxruntime against PyTorch eager on the exported image graph.

    python bench/bench_onnx.py                     # MKT ViT-B/16, 224 px
    python bench/bench_onnx.py --arch toy          # MKT toy ViT, 64 px
    python bench/bench_onnx.py --threads 1 2 --legacy-exporter

For each vocabulary size (30 and 10,000 labels) the same batch of images
(0-255, 8 by default) and the same label embeddings go through

- PyTorch eager: :class:`mmovl.deployment.OpenVocabClsExportWrapper`
  called directly, i.e. the data preprocessor and the model's scoring as
  ``predict`` computes ``pred_score`` (MKT's top-k with NumPy's partition
  on a CPU), under ``torch.inference_mode``;
- onnxruntime (CPU) on the graph :func:`mmovl.deployment.export_cls_onnx`
  wrote from that model (the default torch.export-based exporter, or the
  TorchScript tracer with ``--legacy-exporter``).

Both get the same number of threads (``torch.set_num_threads`` and the
session's ``intra_op_num_threads``); each timing is the median of
``--repeat`` runs after ``--warmup`` runs, the two engines taking turns
run by run so that a change of load on the machine hits both. It prints
the machine, the largest score difference and the ratio onnxruntime /
PyTorch (below 1: onnxruntime is faster). The models have random weights
(a random open_clip model written to a temporary file) and random unit
label embeddings: the time depends on neither.
"""
import argparse
import os
import os.path as osp
import platform
import statistics
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F

ARCHS = {
    # --arch: (config, input size)
    'ViT-B-16': ('configs/mkt/mkt_vit_b16_20e_nuswide.py', 224),
    'toy': ('configs/mkt/mkt_toy_vit_p8_10e_toy.py', 64),
}


def machine() -> str:
    """CPU model, cores, load and library versions, one line each."""
    model = platform.processor() or 'unknown CPU'
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    model = line.split(':', 1)[1].strip()
                    break
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(
        os, 'sched_getaffinity') else os.cpu_count()
    load = ', '.join(f'{x:.2f}' for x in os.getloadavg())
    import onnxruntime as ort
    return (f'CPU: {model}, {os.cpu_count()} logical cores ({usable} '
            f'usable), load average {load}\n'
            f'torch {torch.__version__}, onnxruntime {ort.__version__}, '
            f'numpy {np.__version__}, Python {platform.python_version()}')


def build(arch: str, folder: str):
    """The MKT model of ``arch`` with random weights."""
    import open_clip
    from mmengine.config import Config
    from safetensors.torch import save_file

    from mmovl.deployment import build_classifier

    config, size = ARCHS[arch]
    cfg = Config.fromfile(config)
    name = cfg.model.teacher.model_name
    torch.manual_seed(0)
    clip = open_clip.create_model(name)
    path = osp.join(folder, 'clip.safetensors')
    save_file({k: v.contiguous() for k, v in clip.state_dict().items()}, path)
    del clip
    cfg.model.backbone.checkpoint = path
    cfg.model.teacher.checkpoint = path
    cfg.model.teacher.cache_dir = None
    return build_classifier(cfg), size


def interleaved_medians(fns, warmup: int, repeat: int) -> list:
    """The median time of each function over ``repeat`` rounds that run
    each once, in turn (after ``warmup`` such rounds)."""
    times = [[] for _ in fns]
    for round_ in range(warmup + repeat):
        for fn, kept in zip(fns, times):
            start = time.perf_counter()
            fn()
            if round_ >= warmup:
                kept.append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--arch', choices=list(ARCHS), default='ViT-B-16')
    p.add_argument('--batch', type=int, default=8)
    p.add_argument('--labels', type=int, nargs='+', default=[30, 10_000])
    p.add_argument('--threads', type=int, nargs='+', default=[1])
    p.add_argument('--warmup', type=int, default=2)
    p.add_argument('--repeat', type=int, default=7)
    p.add_argument('--legacy-exporter', action='store_true')
    args = p.parse_args()

    import mmovl  # noqa: F401

    print(machine())
    # the weights and the graph (ViT-B/16: 0.9 GB), removed at the end
    with tempfile.TemporaryDirectory(prefix='mmovl-bench-onnx-') as folder:
        run(args, folder)


def run(args, folder: str) -> None:
    import onnxruntime as ort

    from mmovl.deployment import OpenVocabClsExportWrapper, export_cls_onnx

    model, size = build(args.arch, folder)
    wrapper = OpenVocabClsExportWrapper(model).eval()
    graph = osp.join(folder, 'image.onnx')
    exporter = 'TorchScript tracer' if args.legacy_exporter else \
        'torch.export'
    start = time.perf_counter()
    export_cls_onnx(model, graph, dynamo=not args.legacy_exporter)
    print(f'exported {args.arch} MKT ({exporter}) in '
          f'{time.perf_counter() - start:.1f} s: '
          f'{osp.getsize(graph) / 2**20:.1f} MiB')

    gen = torch.Generator().manual_seed(0)
    images = torch.randint(
        0, 256, (args.batch, 3, size, size), generator=gen).float()
    dim = model.head.out_channels
    rows = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(
            graph, options, providers=['CPUExecutionProvider'])
        for num in args.labels:
            embeds = F.normalize(
                torch.randn(num, dim, generator=gen), dim=-1)
            feed = dict(image=images.numpy(), label_embeds=embeds.numpy())

            def eager():
                with torch.inference_mode():
                    return wrapper(images, embeds)

            def onnx():
                return session.run(['scores'], feed)[0]

            diff = float(np.abs(onnx() - eager().numpy()).max())
            t_torch, t_ort = interleaved_medians((eager, onnx),
                                                 args.warmup, args.repeat)
            rows.append((threads, num, t_torch, t_ort, diff))
            print(f'threads {threads} (torch {torch.get_num_threads()}, '
                  f'onnxruntime {threads}), {num:>6,} labels, batch '
                  f'{args.batch}: PyTorch {1e3 * t_torch:8.1f} ms, '
                  f'onnxruntime {1e3 * t_ort:8.1f} ms, ratio '
                  f'{t_ort / t_torch:.2f}, max |diff| {diff:.2e}',
                  flush=True)
    print('\n| threads | labels | PyTorch eager | onnxruntime | ratio '
          '(ort / torch) | max \\|diff\\| |')
    print('| ---: | ---: | ---: | ---: | ---: | ---: |')
    for threads, num, t_torch, t_ort, diff in rows:
        print(f'| {threads} | {num:,} | {1e3 * t_torch:.1f} ms | '
              f'{1e3 * t_ort:.1f} ms | {t_ort / t_torch:.2f} | '
              f'{diff:.1e} |')


if __name__ == '__main__':
    main()
