# Copyright (c) mmovl contributors. All rights reserved.
"""Precompute a CLIP teacher's image embeddings of a data set, once.

    python tools/misc/cache_teacher_embeds.py \
        --model-name mmovl-toy-vit --checkpoint toy_clip.safetensors \
        --data-root data/toy_world \
        --ann-file annotations/instances_train.json --img-prefix train \
        --out data/toy_world/teacher_embeds_train.safetensors

Training then reads them with the ``LoadTeacherEmbedding`` transform instead
of running the teacher every step. The file is written atomically; its
header records the teacher (model, weights hash, input size, statistics)
and the matrix's hash, which ``LoadTeacherEmbedding(teacher=...)`` checks.
"""
import argparse
import os.path as osp

from mmovl.datasets import CocoMultiLabelDataset
from mmovl.embeds import encode_dataset_images, save_teacher_embeds
from mmovl.embeds.image_cache import teacher_provenance
from mmovl.models import CLIPTeacher


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--model-name', default='mmovl-toy-vit')
    p.add_argument('--checkpoint', required=True)
    p.add_argument('--data-root', default='data/toy_world')
    p.add_argument('--ann-file', default='annotations/instances_train.json')
    p.add_argument('--img-prefix', default='train')
    p.add_argument('--batch-size', type=int, default=128)
    p.add_argument('--num-workers', type=int, default=2)
    p.add_argument('--out', required=True)
    args = p.parse_args()

    teacher = CLIPTeacher(args.model_name, checkpoint=args.checkpoint)
    dataset = CocoMultiLabelDataset(
        data_root=args.data_root, ann_file=args.ann_file,
        data_prefix=args.img_prefix,
        pipeline=[dict(type='LoadImageFromFile'), dict(type='PackInputs')])
    # Raw features: a consumer normalises them if its loss wants unit ones.
    embeds = encode_dataset_images(teacher, dataset, args.batch_size,
                                   args.num_workers, normalize=False)
    keys = [
        osp.normpath(
            osp.relpath(dataset.get_data_info(i)['img_path'], args.data_root))
        for i in range(len(dataset))
    ]
    # The teacher's weights hash, size and statistics go into the header:
    # LoadTeacherEmbedding(teacher=...) refuses a cache of another teacher.
    save_teacher_embeds(args.out, keys, embeds,
                        checkpoint=args.checkpoint, normalized='false',
                        ann_file=args.ann_file,
                        **teacher_provenance(teacher))
    print(f'wrote {len(keys)} embeddings ({embeds.shape[1]}-d) to '
          f'{args.out}')


if __name__ == '__main__':
    main()
