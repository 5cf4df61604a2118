# Copyright (c) mmovl contributors. All rights reserved.
"""Zero-shot multi-label evaluation of a CLIP teacher on a COCO-format set.

    python tools/analysis_tools/eval_zero_shot.py \
        --model-name mmovl-toy-vit --checkpoint toy_clip.safetensors \
        --data-root data/toy_world --ann-file annotations/instances_val.json \
        --img-prefix val --unseen-file annotations/unseen_labels.txt

Scores every image against the prompt embeddings of all labels and reports,
with mmovl's evaluator: GZSL (all labels), ZSL (the unseen labels, over all
images, as MKT's protocol: CLIP's cosine scores of the unseen labels alone
are their columns of the all-label scores), seen-only mAP, and the same for
random scores in the same run.
"""
import argparse
import json

import numpy as np

from mmovl.datasets import CocoMultiLabelDataset
from mmovl.embeds import encode_dataset_images
from mmovl.evaluation import ZSLMultiLabelMetric
from mmovl.models import CLIPTeacher
from mmovl.utils import atomic_write_text


def parse_args():
    p = argparse.ArgumentParser(description='Zero-shot teacher evaluation')
    p.add_argument('--model-name', default='mmovl-toy-vit')
    p.add_argument('--checkpoint', required=True)
    p.add_argument('--data-root', default='data/toy_world')
    p.add_argument('--ann-file', default='annotations/instances_val.json')
    p.add_argument('--img-prefix', default='val')
    p.add_argument('--unseen-file', default='annotations/unseen_labels.txt')
    p.add_argument('--templates', default=None,
                   help="None, 'ensemble' or one template with {}")
    p.add_argument('--batch-size', type=int, default=64)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--out', help='write the figures to this json file')
    return p.parse_args()


def teacher_scores(teacher: CLIPTeacher, dataset, batch_size: int,
                   templates=None) -> np.ndarray:
    """(N, C) cosine similarities of images to the dataset's label names."""
    labels = teacher.encode_labels(dataset.metainfo['classes'], templates)
    images = encode_dataset_images(teacher, dataset, batch_size)
    return (images @ labels.t().cpu()).numpy()


def evaluate(scores: np.ndarray, dataset,
             zsl_protocol: str = 'sliced') -> dict:
    """GZSL, ZSL and seen-only metrics of (N, C) scores on ``dataset``;
    ``zsl_protocol`` as ``ZSLMultiLabelMetric.calculate`` (``'sliced'``:
    the unseen columns over all images, which for CLIP's cosine scores are
    its scores with the unseen labels alone)."""
    classes = list(dataset.metainfo['classes'])
    unseen = [classes.index(n) for n in dataset.metainfo['unseen_classes']]
    seen = [i for i in range(len(classes)) if i not in unseen]
    target = np.zeros(scores.shape, dtype=np.int8)
    for i in range(len(dataset)):
        target[i, dataset.get_data_info(i)['gt_label']] = 1
    res = ZSLMultiLabelMetric.calculate(
        scores, target, unseen=unseen or None, zsl_protocol=zsl_protocol)
    seen_res = ZSLMultiLabelMetric.calculate(scores[:, seen], target[:, seen])
    res['seen/mAP'] = seen_res['gzsl/mAP']
    return res


def main():
    args = parse_args()
    teacher = CLIPTeacher(args.model_name, checkpoint=args.checkpoint)
    dataset = CocoMultiLabelDataset(
        data_root=args.data_root, ann_file=args.ann_file,
        data_prefix=args.img_prefix, unseen_file=args.unseen_file,
        pipeline=[dict(type='LoadImageFromFile'), dict(type='PackInputs')])
    scores = teacher_scores(teacher, dataset, args.batch_size, args.templates)
    rng = np.random.default_rng(args.seed)
    report = {
        'teacher': evaluate(scores, dataset),
        'random': evaluate(rng.random(scores.shape), dataset),
    }
    keys = ['zsl/mAP', 'zsl/F1@3', 'gzsl/mAP', 'gzsl/F1@3', 'seen/mAP']
    print(f"{'scores':<10}" + ''.join(f'{k:>12}' for k in keys))
    for name, res in report.items():
        print(f'{name:<10}' + ''.join(f'{res[k]:12.2f}' for k in keys))
    if args.out:
        atomic_write_text(args.out, json.dumps(report, indent=2))


if __name__ == '__main__':
    main()
