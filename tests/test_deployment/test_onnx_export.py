# Copyright (c) mmovl contributors. All rights reserved.
"""ONNX export with the vocabulary as an input (mmovl.deployment and
tools/deployment/export_onnx.py), run with onnxruntime on the CPU against
the PyTorch model on the same inputs:

- the image graph's scores are the model's ``pred_score`` (its data
  preprocessor, backbone and head) for vocabularies of 6, 30 and 10,000
  labels and other batch sizes than the traced one;
- the text graph, through ``label_embeds_from_names``, gives the label
  embeddings the model scores with (CLIPTeacher's template average for
  MKT, MKT's learned prompt, CPRFL's trained text tower, UniCL's
  prototypes).

Toy configs with random weights (the ``random_toy_teacher`` fixture, the
students moved away from it), one torch thread; no timing here
(``bench/bench_onnx.py`` times it).
"""
import importlib.util
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config

from mmovl.datasets.toy_world import LABELS
from mmovl.deployment import (OpenVocabClsExportWrapper, build_classifier,
                              export_cls_onnx, export_text_onnx,
                              label_embeds_from_names, model_label_embeds,
                              read_onnx_metadata)

ort = pytest.importorskip('onnxruntime')
pytest.importorskip('onnx')

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = {
    'mkt': 'mmovl/configs/mkt/mkt_toy_vit_p8_10e_toy.py',
    'mkt_prompt': 'mmovl/configs/mkt/mkt_toy_vit_p8_prompt-official_5e_toy.py',
    'cprfl': 'mmovl/configs/cprfl/cprfl_toy_vit_p8_10e_toy_lt.py',
    'unicl': 'mmovl/configs/unicl/unicl_toy_vit_p8_10e_toy.py',
}
# Two templates, so that the text graph's recipe averages as the teacher.
TEMPLATES = ('a photo of a {}.', 'a drawing of the {}.')
# float32 through a 4-block ViT and a 2-block text tower: observed
# differences are below 1e-6 (scores) and 3e-6 (raw text features)
TOL = dict(rtol=1e-4, atol=1e-5)

pytestmark = pytest.mark.usefixtures('one_thread')


def _names(num):
    """``num`` distinct label names: the toy world's 30, then made up."""
    extra = [f'{LABELS[i % 30]} number {i}' for i in range(30, num)]
    return list(LABELS[:num]) + extra


def _build(kind, teacher, seed=1):
    cfg = Config.fromfile(osp.join(REPO, CONFIGS[kind]))
    if 'teacher' in cfg.model:
        cfg.model.backbone.checkpoint = teacher
        cfg.model.teacher.checkpoint = teacher
    model = build_classifier(cfg)
    # weights (and a prompt learner's vectors) away from what the config
    # builds, so that nothing matches by starting equal
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return cfg, model


def _images(num, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (num, 3, 64, 64), generator=gen,
                         dtype=torch.uint8)


def _pred_score(model, images, names):
    """The model's own scores: its data preprocessor, then predict."""
    model.set_vocabulary(names)
    inputs = model.data_preprocessor({'inputs': images}, False)['inputs']
    with torch.no_grad():
        return torch.stack([s.pred_score for s in model.predict(inputs)
                            ]).numpy()


def _session(path):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(
        path, options, providers=['CPUExecutionProvider'])


def _scores(session, images, embeds):
    return session.run(['scores'], {
        'image': images.float().numpy(),
        'label_embeds': np.asarray(embeds, dtype=np.float32)
    })[0]


@pytest.fixture(scope='module')
def mkt(tmp_path_factory, random_toy_teacher):
    """MKT with two templates, exported with torch.onnx's default
    (torch.export-based) exporter."""
    _, model = _build('mkt', random_toy_teacher)
    model.templates = TEMPLATES
    folder = tmp_path_factory.mktemp('onnx_mkt')
    image = export_cls_onnx(model, str(folder / 'mkt.onnx'))
    text = export_text_onnx(model, str(folder / 'mkt_text.onnx'))
    return model, _session(image), _session(text)


@pytest.mark.parametrize('num_labels', [6, 30, 10_000])
def test_mkt_image_graph_gives_pred_score(mkt, num_labels):
    model, image_graph, _ = mkt
    names = _names(num_labels)
    images = _images(3)  # traced with 2 images and 5 labels
    expected = _pred_score(model, images, names)
    embeds = model_label_embeds(model, names)
    got = _scores(image_graph, images, embeds)
    assert got.shape == (3, num_labels)
    np.testing.assert_allclose(got, expected, **TOL)
    # one image, with the same vocabulary
    np.testing.assert_allclose(
        _scores(image_graph, images[:1], embeds), expected[:1], **TOL)


def test_mkt_text_graph_gives_the_teachers_template_average(mkt):
    model, image_graph, text_graph = mkt
    names = ['red circle', 'purple star', 'a cat on a mat', 'green cross',
             'yellow triangle', 'blue square']
    meta = read_onnx_metadata(text_graph)
    assert meta['graph'] == 'text' and meta['tokenizer'] == 'mmovl-toy-vit'
    embeds = label_embeds_from_names(text_graph, names)
    expected = model.teacher.encode_labels(names, TEMPLATES).numpy()
    np.testing.assert_allclose(embeds, expected, **TOL)
    np.testing.assert_allclose(
        np.linalg.norm(embeds, axis=1), np.ones(len(names)), atol=1e-6)
    # names to scores with the two graphs alone
    images = _images(2, seed=3)
    np.testing.assert_allclose(
        _scores(image_graph, images, embeds),
        _pred_score(model, images, names), **TOL)


@pytest.fixture(scope='module')
def legacy_graphs(tmp_path_factory, random_toy_teacher):
    """The other models, exported with the TorchScript tracer."""
    out = {}
    folder = tmp_path_factory.mktemp('onnx_legacy')
    for kind in ('mkt_prompt', 'cprfl', 'unicl'):
        _, model = _build(kind, random_toy_teacher, seed=2)
        image = export_cls_onnx(
            model, str(folder / f'{kind}.onnx'), dynamo=False)
        text = export_text_onnx(
            model,
            str(folder / f'{kind}_text.onnx'),
            tokenizer_name='mmovl-toy-vit',
            dynamo=False)
        out[kind] = (model, _session(image), _session(text))
    return out


@pytest.mark.parametrize('kind', ['mkt_prompt', 'cprfl', 'unicl'])
def test_other_models_with_the_tracer(legacy_graphs, kind):
    model, image_graph, text_graph = legacy_graphs[kind]
    # MKT's official stage-2 prompt is 'There is a {} in the scene': 'a
    # scene' has tokens of the template in its name, which keep their own
    # embeddings there
    names = ['a scene', 'there is'] + _names(28)
    for num in (6, 30):
        images = _images(3, seed=num)
        embeds = model_label_embeds(model, names[:num])
        np.testing.assert_allclose(
            _scores(image_graph, images, embeds),
            _pred_score(model, images, names[:num]), **TOL)
        from_text = label_embeds_from_names(text_graph, names[:num])
        np.testing.assert_allclose(from_text, embeds.numpy(), **TOL)
    meta = read_onnx_metadata(image_graph)
    assert meta['image_input'] == 'BGR 0-255'
    assert meta['model'] == type(model).__name__


def test_prompt_too_long_for_the_learned_template(legacy_graphs):
    _, _, text_graph = legacy_graphs['mkt_prompt']
    with pytest.raises(ValueError, match="learned template's tokens"):
        label_embeds_from_names(text_graph, ['red circle', 'very ' * 40])


def test_refusals(legacy_graphs, mkt, tmp_path):
    _, image_graph, _ = mkt
    with pytest.raises(ValueError, match='Not an mmovl text graph'):
        label_embeds_from_names(image_graph, ['red circle', 'blue square'])
    with pytest.raises(TypeError, match='not one of the open-vocabulary'):
        OpenVocabClsExportWrapper(torch.nn.Linear(2, 2))
    cprfl = legacy_graphs['cprfl'][0]  # trains its text tower: no teacher
    with pytest.raises(ValueError, match='tokenizer_name'):
        export_text_onnx(cprfl, str(tmp_path / 'text.onnx'))


def _tool():
    path = osp.join(REPO, 'tools', 'deployment', 'export_onnx.py')
    spec = importlib.util.spec_from_file_location('export_onnx', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tool_exports_and_checks(tmp_path, random_toy_teacher,
                                 tiny_world):
    _, model = _build('mkt', random_toy_teacher, seed=4)
    ckpt = str(tmp_path / 'mkt.pth')
    torch.save(
        dict(
            meta=dict(dataset_meta=dict(classes=_names(6))),
            state_dict=model.state_dict()), ckpt)
    out = _tool().main([
        osp.join(REPO, CONFIGS['mkt']), ckpt,
        str(tmp_path / 'out' / 'mkt.onnx'), '--text',
        str(tmp_path / 'out' / 'mkt_text.onnx'), '--legacy-exporter',
        '--check', '--cfg-options',
        f'model.backbone.checkpoint={random_toy_teacher}',
        f'model.teacher.checkpoint={random_toy_teacher}'
    ])
    assert set(out['diffs']) == {'scores', 'label_embeds'}
    assert max(out['diffs'].values()) < 1e-5
    meta = read_onnx_metadata(str(tmp_path / 'out' / 'mkt.onnx'))
    assert meta['image_size'] == '[64, 64]' and meta['model'] == 'MKT'

    # image files read as mmcv reads them (BGR, 0-255) and label names,
    # through the two graphs alone: the inferencer's scores
    import mmcv

    from mmovl.apis import OpenVocabClsInferencer
    cfg = Config.fromfile(osp.join(REPO, CONFIGS['mkt']))
    cfg.model.backbone.checkpoint = random_toy_teacher
    cfg.model.teacher.checkpoint = random_toy_teacher
    names = ['purple star', 'red circle', 'blue square', 'green cross']
    paths = [osp.join(tiny_world, 'val', f'00000{i}.png') for i in range(3)]
    inferencer = OpenVocabClsInferencer(cfg, ckpt, vocabulary=names)
    expected = np.stack([r['pred_scores'] for r in inferencer(paths)])
    embeds = label_embeds_from_names(
        str(tmp_path / 'out' / 'mkt_text.onnx'), names)
    bgr = torch.from_numpy(
        np.stack([mmcv.imread(p).transpose(2, 0, 1) for p in paths]))
    np.testing.assert_allclose(
        _scores(_session(str(tmp_path / 'out' / 'mkt.onnx')), bgr, embeds),
        expected, **TOL)

    # already normalised images
    session = _session(
        export_cls_onnx(
            model,
            str(tmp_path / 'normalized.onnx'),
            include_preprocessor=False,
            dynamo=False))
    images = _images(2)
    inputs = model.data_preprocessor({'inputs': images}, False)['inputs']
    names = _names(6)
    np.testing.assert_allclose(
        _scores(session, inputs, model_label_embeds(model, names)),
        _pred_score(model, images, names), **TOL)
