# Copyright (c) mmovl contributors. All rights reserved.
"""Cost of an MKT training step, measured against its own parts.

    python bench/bench_mkt_speed.py                       # ViT-B/16, 224 px
    python bench/bench_mkt_speed.py --model mmovl-toy-vit --size 64 --batch 64

Times forward + backward of (a) the bare backbone (a sum of its tokens as
the loss), (b) a full MKT step (two-stream head over the current vocabulary,
rank loss, distillation) with cached teacher embeddings and (c) the same
with the teacher run online, all in one process on random weights and
inputs. Prints (b)/(a) - 1 (head + losses overhead; target <= 5 %) and
(c)/(b) (what the cache saves; target >= 1.4x).
"""
import argparse
import os
import tempfile
import time

import torch


def timeit(fn, repeat, warmup=1):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--model', default='ViT-B-16')
    p.add_argument('--size', type=int, default=224)
    p.add_argument('--batch', type=int, default=8)
    p.add_argument('--labels', type=int, default=925)
    p.add_argument('--frozen-stages', type=int, default=10)
    p.add_argument('--repeat', type=int, default=3)
    args = p.parse_args()

    import open_clip
    from mmpretrain.registry import MODELS
    from mmpretrain.structures import DataSample
    from safetensors.torch import save_file

    import mmovl  # noqa: F401

    torch.manual_seed(0)
    clip = open_clip.create_model(args.model)
    ckpt = os.path.join(tempfile.mkdtemp(), 'clip.safetensors')
    save_file({k: v.contiguous() for k, v in clip.state_dict().items()}, ckpt)
    del clip
    frozen = min(args.frozen_stages,
                 open_clip.get_model_config(args.model)['vision_cfg']
                 ['layers'] - 1)
    model = MODELS.build(
        dict(type='MKT',
             backbone=dict(type='OpenCLIPViT', model_name=args.model,
                           checkpoint=ckpt, frozen_stages=frozen),
             head=dict(type='TwoStreamHead', topk=16,
                       normalize_embeds=False),
             teacher=dict(type='CLIPTeacher', model_name=args.model,
                          checkpoint=ckpt)))
    model.train()
    names = [f'label {i}' for i in range(args.labels)]
    model.set_vocabulary(names)
    model.label_embeds()  # encoded once, as the cache makes it in training
    x = torch.randn(args.batch, 3, args.size, args.size)
    g = torch.Generator().manual_seed(0)
    samples = []
    for _ in range(args.batch):
        s = DataSample().set_gt_label(
            torch.randint(args.labels, (3, ), generator=g).tolist())
        samples.append(s)
    with torch.no_grad():
        cached = model.teacher.encode_image(x, normalize=False)
    cached_samples = [s.clone() for s in samples]
    for s, t in zip(cached_samples, cached):
        s.set_field(t, 'teacher_embed')

    def backbone_step():
        model.zero_grad()
        cls, patches = model.extract_feat(x)
        (cls.sum() + patches.sum()).backward()

    def mkt_step(batch):
        def step():
            model.zero_grad()
            losses = model.loss(x, batch)
            sum(losses.values()).backward()
        return step

    t_bb = timeit(backbone_step, args.repeat)
    t_cached = timeit(mkt_step(cached_samples), args.repeat)
    t_online = timeit(mkt_step(samples), args.repeat)
    print(f'{args.model} {args.size}px, batch {args.batch}, '
          f'{args.labels} labels, {frozen} frozen blocks, '
          f'{torch.get_num_threads()} threads (best of {args.repeat})')
    print(f'bare backbone fwd+bwd      {t_bb:8.3f} s')
    print(f'MKT step, cached teacher   {t_cached:8.3f} s   overhead '
          f'{100 * (t_cached / t_bb - 1):+.1f} % (target <= 5 %)')
    print(f'MKT step, online teacher   {t_online:8.3f} s   cached is '
          f'{t_online / t_cached:.2f}x faster (target >= 1.4x)')


if __name__ == '__main__':
    main()
