# Copyright (c) mmovl contributors. All rights reserved.
"""Open-vocabulary web demo (Gradio): upload or pick an image, type label
names, see them ranked (MKT, CPRFL, UniCL) and, with a ViLD detector, found
as named boxes.

    python demo/web_demo.py configs/mkt/mkt_toy_vit_p8_10e_toy.py \\
        work_dirs/bench_mkt/MKT/epoch_10.pth \\
        --det-config configs/vild/vild_toy_r18_fpn_toy.py \\
        --det-checkpoint work_dirs/bench_vild/vild/epoch_6.pth

then open http://127.0.0.1:7860. The page's logic is
:mod:`mmovl.apis.web_demo`; this script loads the models and serves it.
Needs ``pip install gradio`` (``requirements/tests.txt`` pins it).
"""
import argparse
import os.path as osp

from mmovl.apis.inferencers import (OpenVocabClsInferencer,
                                    OpenVocabDetInferencer)
from mmovl.apis.web_demo import WebDemo, build_demo
from mmovl.utils import enable_safe_checkpoint_loading


def parse_args():
    parser = argparse.ArgumentParser(
        description='Web page: rank / detect label names of your choice')
    parser.add_argument('config', nargs='?', help='config of an MKT, CPRFL '
                        'or UniCL model (optional with --det-config)')
    parser.add_argument('checkpoint', nargs='?', help='its checkpoint')
    parser.add_argument('--det-config', help='config of a ViLD model, for '
                        'the detection tab')
    parser.add_argument('--det-checkpoint', help='its checkpoint')
    parser.add_argument('--examples', default='data/toy_world',
                        help='toy world whose images and vocabularies the '
                        'page offers as examples, if it exists (default: '
                        '%(default)s)')
    parser.add_argument('--topk', type=int, default=10,
                        help='labels the ranking shows at first')
    parser.add_argument('--score-thr', type=float, default=0.3,
                        help='detection score threshold at first')
    parser.add_argument('--cache-size', type=int, default=16,
                        help='vocabularies whose label embeddings are kept '
                        'in memory')
    parser.add_argument('--max-labels', type=int, default=1000,
                        help='most label names a request may give')
    parser.add_argument('--cache-dir', help='disk cache of label embeddings '
                        '(a vocabulary is encoded once across runs)')
    parser.add_argument('--device', default='cpu', help='e.g. cuda:0; '
                        'default: %(default)s')
    parser.add_argument('--server-name', default='127.0.0.1',
                        help='address to serve on; 0.0.0.0 for every '
                        'interface (default: %(default)s)')
    parser.add_argument('--port', type=int, default=7860,
                        help='port (default: %(default)s)')
    parser.add_argument('--share', action='store_true',
                        help="also serve through a public gradio.live link "
                        "(off by default)")
    args = parser.parse_args()
    if (args.config is None) != (args.checkpoint is None):
        parser.error('give a classifier config and its checkpoint together')
    if (args.det_config is None) != (args.det_checkpoint is None):
        parser.error('give --det-config and --det-checkpoint together')
    if args.config is None and args.det_config is None:
        parser.error('give a classifier (CONFIG CHECKPOINT), a detector '
                     '(--det-config, --det-checkpoint) or both')
    return args


def main():
    # Any checkpoint mmengine loads: weights_only=True plus its own types
    # (the inferencers read their weights that way themselves).
    enable_safe_checkpoint_loading()
    args = parse_args()
    classifier = detector = None
    if args.config is not None:
        # Its vocabulary at first: the classes the checkpoint was trained on.
        classifier = OpenVocabClsInferencer(
            args.config, args.checkpoint, device=args.device,
            cache_dir=args.cache_dir)
    if args.det_config is not None:
        detector = OpenVocabDetInferencer(
            args.det_config, args.det_checkpoint, device=args.device,
            show_progress=False, cache_dir=args.cache_dir)
    examples = args.examples if osp.isdir(args.examples) else None
    app = WebDemo(classifier, detector, examples_dir=examples,
                  cache_size=args.cache_size, max_labels=args.max_labels)
    page = build_demo(app, topk=args.topk, score_thr=args.score_thr)
    page.queue(default_concurrency_limit=1).launch(
        server_name=args.server_name,
        server_port=args.port,
        share=args.share,
        max_file_size='20mb')


if __name__ == '__main__':
    main()
