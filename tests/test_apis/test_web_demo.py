# Copyright (c) mmovl contributors. All rights reserved.
"""The web demo (mmovl.apis.web_demo, demo/web_demo.py) on random-weight
toy checkpoints: what its functions return is what OpenVocabClsInferencer
and OpenVocabDetInferencer give for the same image and names; a vocabulary
that comes back is not encoded again; bad input is a message, never a stack
trace; and the page does it all over Gradio's HTTP API and, where Chromium
is installed, in a real browser."""
import json
import os.path as osp
import socket
import sys
import urllib.request
from unittest import mock

import mmcv
import numpy as np
import pytest
import torch
from mmdet.registry import MODELS as DET_MODELS
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner.checkpoint import save_checkpoint
from mmpretrain.registry import MODELS as CLS_MODELS

from mmovl.apis import OpenVocabClsInferencer, OpenVocabDetInferencer
from mmovl.apis.web_demo import (DemoError, LabelEmbeddingMemo, WebDemo,
                                 build_demo, load_image, parse_labels,
                                 toy_world_examples)
from mmovl.models import CLIPTeacher

gr = pytest.importorskip('gradio')  # requirements/tests.txt pins it

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CLS_CONFIGS = {
    'mkt': 'mmovl/configs/mkt/mkt_toy_vit_p8_10e_toy.py',
    'cprfl': 'mmovl/configs/cprfl/cprfl_toy_vit_p8_10e_toy_lt.py',
    'unicl': 'mmovl/configs/unicl/unicl_toy_vit_p8_10e_toy.py',
}
VILD = 'mmovl/configs/vild/vild_toy_r18_fpn_toy.py'
TRAINED = ('red circle', 'blue square')
# What a user types: commas, line ends, stray spaces, an unseen label and a
# name the toy world never had.
TYPED = 'blue square, red circle\n purple star ,yellow triangle\n\norange moon'
NAMES = ['blue square', 'red circle', 'purple star', 'yellow triangle',
         'orange moon']
OTHER = ['green cross', 'red circle', 'white heart']

pytestmark = pytest.mark.usefixtures('one_thread')


# -- fixtures -------------------------------------------------------------
def _perturbed(model):
    """Weights moved away from what the config builds, so that results
    match only if the checkpoint is loaded."""
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model.eval()


@pytest.fixture(scope='module')
def cls_checkpoints(tmp_path_factory, random_toy_teacher, tiny_world):
    """kind -> (config, checkpoint) of random-weight toy classifiers."""
    out = {}
    folder = tmp_path_factory.mktemp('cls_ckpts')
    for kind, path in CLS_CONFIGS.items():
        cfg = Config.fromfile(osp.join(REPO, path))
        if 'teacher' in cfg.model:
            cfg.model.backbone.checkpoint = random_toy_teacher
            cfg.model.teacher.checkpoint = random_toy_teacher
        cfg.test_dataloader.dataset.data_root = tiny_world
        model = _perturbed(CLS_MODELS.build(cfg.model))
        ckpt = str(folder / f'{kind}.pth')
        torch.save(dict(meta=dict(dataset_meta=dict(classes=TRAINED)),
                        state_dict=model.state_dict()), ckpt)
        out[kind] = (cfg, ckpt)
    return out


@pytest.fixture(scope='module')
def vild_checkpoint(tmp_path_factory, random_toy_teacher, tiny_world):
    """(config, checkpoint) of a random-weight toy ViLD, keeping every box
    (a random detector scores every class near zero)."""
    cfg = Config.fromfile(osp.join(REPO, VILD))
    cfg.model.teacher.checkpoint = random_toy_teacher
    cfg.model.test_cfg.rcnn.score_thr = 0.0
    init_default_scope('mmdet')
    model = _perturbed(DET_MODELS.build(cfg.model))
    ckpt = str(tmp_path_factory.mktemp('det_ckpt') / 'vild.pth')
    save_checkpoint(dict(meta=dict(dataset_meta=dict(classes=TRAINED)),
                         state_dict=model.state_dict()), ckpt)
    return cfg, ckpt


def _detector(vild_checkpoint):
    cfg, ckpt = vild_checkpoint
    return OpenVocabDetInferencer(cfg, ckpt, show_progress=False)


@pytest.fixture(scope='module')
def app(cls_checkpoints, vild_checkpoint, tiny_world):
    """The demo of the MKT classifier and the ViLD detector, with the tiny
    toy world's examples."""
    cfg, ckpt = cls_checkpoints['mkt']
    return WebDemo(OpenVocabClsInferencer(cfg, ckpt),
                   _detector(vild_checkpoint), examples_dir=tiny_world)


@pytest.fixture(scope='module')
def reference(cls_checkpoints, vild_checkpoint):
    """Inferencers of their own (other model objects) to compare with."""
    cfg, ckpt = cls_checkpoints['mkt']
    return dict(cls=OpenVocabClsInferencer(cfg, ckpt, vocabulary=NAMES),
                det=_detector(vild_checkpoint))


def _image(root, index=1):
    return osp.join(root, 'val', f'{index:06d}.png')


def _expected_ranking(inferencer, image, names, topk, tmp_path):
    """The inferencer's ranking of ``names`` and its picture of the top
    ``min(topk, 5)`` labels, drawn at a short edge of 256 (the demo's, for
    the toy world's 64 x 64 images)."""
    result = inferencer(image, vocabulary=names, topk=topk)[0]
    inferencer(image, topk=min(topk, 5), show_dir=str(tmp_path),
               resize=256)
    drawn = mmcv.imread(str(tmp_path / osp.basename(image)))[..., ::-1]
    rows = [[i, n, round(s, 4)] for i, (n, s) in
            enumerate(zip(result['labels'], result['scores']), 1)]
    return rows, drawn


def _expected_boxes(inferencer, image, names, score_thr):
    out = inferencer(image, vocabulary=names, return_vis=True,
                     pred_score_thr=score_thr, resize=256)
    pred = out['predictions'][0]
    kept = [(n, s, b) for n, s, b in zip(pred['names'], pred['scores'],
                                         pred['bboxes']) if s >= score_thr]
    return kept, out['visualization'][0]


def _assert_boxes(rows, kept):
    assert [r[0] for r in rows] == [n for n, _, _ in kept]
    np.testing.assert_allclose([r[1] for r in rows], [s for _, s, _ in kept],
                               atol=5e-5)
    np.testing.assert_allclose([r[2:] for r in rows], [b for _, _, b in kept],
                               atol=0.051)


def _median_score(inferencer, image, names):
    """A threshold that keeps about half of a random detector's boxes."""
    pred = inferencer(image, vocabulary=names)['predictions'][0]
    assert len(pred['scores']) >= 2
    return float(np.median(pred['scores']))


# -- the functions ----------------------------------------------------------
def test_parse_labels():
    assert parse_labels(TYPED) == NAMES
    assert parse_labels('red circle') == ['red circle']
    for empty in (None, '', ' , \n ,'):
        with pytest.raises(DemoError, match='No label names'):
            parse_labels(empty)
    with pytest.raises(DemoError, match=r"more than once: \['red circle'\]"):
        parse_labels('red circle, blue square\nred circle')
    # CLIP lower-cases and collapses spaces: the model sees one name
    with pytest.raises(DemoError, match="'Red Circle' / 'red  circle'.*"
                       'cannot tell them apart'):
        parse_labels('blue square, Red Circle, red  circle')
    with pytest.raises(DemoError, match='at most 3'):
        parse_labels('a, b, c, d', max_labels=3)


@pytest.mark.parametrize('kind', list(CLS_CONFIGS))
def test_classify_is_the_inferencers_ranking(kind, cls_checkpoints,
                                             tiny_world, tmp_path):
    cfg, ckpt = cls_checkpoints[kind]
    demo = WebDemo(OpenVocabClsInferencer(cfg, ckpt))
    reference = OpenVocabClsInferencer(cfg, ckpt, vocabulary=NAMES)
    image = _image(tiny_world)
    rows, picture, status = demo.classify(image, TYPED, topk=4)
    expected, drawn = _expected_ranking(reference, image, NAMES, 4,
                                        tmp_path)
    assert [r[:2] for r in rows] == [r[:2] for r in expected]
    np.testing.assert_allclose([r[2] for r in rows],
                               [r[2] for r in expected], atol=1.01e-4)
    np.testing.assert_array_equal(picture, drawn)
    assert picture.shape == (256, 256, 3)
    assert status.startswith('Ranked 5 labels in ')
    # every label, from an RGB array as Gradio and PIL give it
    rgb = mmcv.imread(image)[..., ::-1]
    all_rows, _, _ = demo.classify(rgb, TYPED, topk=None)
    assert len(all_rows) == 5
    assert all_rows[:4] == rows


@pytest.mark.parametrize('kind', list(CLS_CONFIGS))
def test_a_vocabulary_that_comes_back_is_not_encoded_again(
        kind, cls_checkpoints, tiny_world):
    """Counted where each model encodes: MKT through its CLIP teacher,
    CPRFL through its trained text tower, UniCL through its own."""
    cfg, ckpt = cls_checkpoints[kind]
    demo = WebDemo(OpenVocabClsInferencer(cfg, ckpt), cache_size=2)
    model = demo.classifier.model
    if kind == 'mkt':
        target, name = CLIPTeacher, '_encode_prompts'
    else:
        target = type(model)
        name = 'encode_vocabulary' if kind == 'cprfl' else 'encode_text'
    image = _image(tiny_world)
    with mock.patch.object(target, name, autospec=True,
                           side_effect=getattr(target, name)) as encode:
        first = demo.classify(image, TYPED)
        encodings = encode.call_count
        assert encodings > 0
        assert first[2].endswith('(label embeddings encoded now).')
        demo.classify(image, ', '.join(OTHER))
        assert encode.call_count == 2 * encodings
        # back and forth: both are kept
        for typed in (TYPED, ', '.join(OTHER), '\n'.join(NAMES)):
            again = demo.classify(image, typed)
            assert encode.call_count == 2 * encodings
            assert again[2].endswith('(label embeddings from the cache).')
        assert again[0] == first[0]
        # a third vocabulary pushes out the least recently used (OTHER)
        demo.classify(image, 'green cross, red circle')
        assert NAMES in demo.memo and OTHER not in demo.memo
        demo.classify(image, ', '.join(OTHER))
        assert encode.call_count == 4 * encodings
    assert demo.memo.hits >= 3 and len(demo.memo) == 2


def test_the_memo_steps_aside_in_training(cls_checkpoints):
    cfg, ckpt = cls_checkpoints['unicl']
    inferencer = OpenVocabClsInferencer(cfg, ckpt, vocabulary=NAMES)
    model = inferencer.model
    memo = LabelEmbeddingMemo(model, size=4)
    assert memo.method == '_label_prototypes'
    first = model._label_prototypes()
    assert model._label_prototypes() is first and memo.hits == 1
    model.train()
    with mock.patch.object(type(model), 'encode_text', autospec=True,
                           side_effect=type(model).encode_text) as encode:
        model._label_prototypes()
    assert encode.call_count > 0 and memo.hits == 1
    model.eval()
    with pytest.raises(ValueError, match='at least 1'):
        LabelEmbeddingMemo(model, size=0)


def test_detect_is_the_inferencers_boxes(app, reference, tiny_world):
    image = _image(tiny_world, 2)
    thr = _median_score(reference['det'], image, NAMES)
    kept, drawn = _expected_boxes(reference['det'], image, NAMES, thr)
    assert kept
    with mock.patch.object(CLIPTeacher, '_encode_prompts', autospec=True,
                           side_effect=CLIPTeacher._encode_prompts) as enc:
        picture, rows, status = app.detect(image, TYPED, thr)
        assert enc.call_count > 0  # a vocabulary it had not seen
        assert status.endswith('(label embeddings encoded now).')
        _assert_boxes(rows, kept)
        np.testing.assert_array_equal(picture, drawn)
        assert rows == sorted(rows, key=lambda r: -r[1])
        assert status.startswith(f'{len(rows)} boxes scoring at least ')
        # back and forth: the teacher keeps both vocabularies
        calls = enc.call_count
        app.detect(image, ', '.join(OTHER), 0.5)
        assert enc.call_count > calls
        calls = enc.call_count
        for typed in (TYPED, ', '.join(OTHER)):
            *_, status = app.detect(image, typed, thr)
            assert status.endswith('(label embeddings from the cache).')
        assert enc.call_count == calls
    # no box that high: an empty table, the plain picture
    picture, rows, status = app.detect(image, TYPED, 1.0)
    assert rows == [] and status.startswith('0 boxes')


def test_errors_are_messages_that_name_no_server_path(app, tiny_world,
                                                      tmp_path):
    image = _image(tiny_world)
    garbage = tmp_path / 'garbage.png'
    garbage.write_bytes(b'\x89PNG\r\n\x1a\n' + bytes(range(200)))
    cut = tmp_path / 'cut.png'
    with open(image, 'rb') as f:
        cut.write_bytes(f.read()[:300])
    empty = tmp_path / 'empty.jpg'
    empty.write_bytes(b'')
    for run in (app.classify, app.detect):
        with pytest.raises(DemoError, match='No image'):
            run(None, TYPED)
        with pytest.raises(DemoError, match='No label names'):
            run(image, ' ,\n')
        with pytest.raises(DemoError, match='cannot tell them apart'):
            run(image, 'Red Circle, red circle')
        for bad, why in ((garbage, 'not an image file'),
                         (cut, 'not an image file'),
                         (empty, 'empty')):
            with pytest.raises(DemoError, match=why) as info:
                run(str(bad), TYPED)
            assert bad.name in str(info.value)
            assert str(tmp_path) not in str(info.value)
    with pytest.raises(DemoError, match='between 0 and 1'):
        app.detect(image, TYPED, 1.5)
    with pytest.raises(DemoError, match='positive whole number'):
        app.classify(image, TYPED, 0)
    with pytest.raises(DemoError, match='expected an RGB picture'):
        load_image(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(ValueError, match='a classifier, a detector'):
        WebDemo()


def test_a_damaged_jpeg_is_a_warning_on_the_page(app, tiny_world, tmp_path):
    import cv2
    ok, data = cv2.imencode('.jpg', mmcv.imread(_image(tiny_world)))
    assert ok
    damaged = bytearray(data.tobytes())
    damaged[-2:] = b'\x00\x00'  # no end-of-image marker
    path = tmp_path / 'damaged.jpg'
    path.write_bytes(bytes(damaged))
    rows, _, status = app.classify(str(path), TYPED)
    assert len(rows) == 5
    assert '**Warning:** damaged.jpg: damaged JPEG' in status
    assert str(tmp_path) not in status


def test_toy_world_examples(tiny_world, tmp_path):
    images, vocabularies = toy_world_examples(tiny_world, num_images=3)
    assert [osp.basename(p) for p in images] == [
        '000000.png', '000001.png', '000002.png']
    assert list(vocabularies) == ['all 30 labels', 'the 6 unseen labels']
    assert vocabularies['the 6 unseen labels'].count('\n') == 5
    assert toy_world_examples(str(tmp_path)) == ([], {})


# -- the page -------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.fixture(scope='module')
def server(app):
    """The page, served in this process on a free port."""
    page = build_demo(app)
    page.queue(default_concurrency_limit=1).launch(
        server_name='127.0.0.1', server_port=_free_port(),
        prevent_thread_lock=True, quiet=True, share=False, ssr_mode=False)
    yield page.local_url
    page.close()


def _read_png(data: bytes) -> np.ndarray:
    return mmcv.imfrombytes(data, flag='color', channel_order='rgb')


def test_http_api(server, reference, tiny_world, tmp_path):
    """The page's functions through Gradio's HTTP API (gradio_client), as
    any program (or the page's own JavaScript) calls them; runs where no
    browser is."""
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    client = Client(server, verbose=False)
    api = client.view_api(return_format='dict', print_info=False)
    assert set(api['named_endpoints']) == {'/classify', '/detect'}

    image = _image(tiny_world, 3)
    table, picture, status = client.predict(
        handle_file(image), TYPED, 4, api_name='/classify')
    expected, drawn = _expected_ranking(reference['cls'], image, NAMES, 4,
                                        tmp_path)
    assert table['headers'] == ['rank', 'label', 'score']
    assert [r[:2] for r in table['data']] == [r[:2] for r in expected]
    np.testing.assert_allclose([r[2] for r in table['data']],
                               [r[2] for r in expected], atol=1.01e-4)
    with open(picture, 'rb') as f:
        np.testing.assert_array_equal(_read_png(f.read()), drawn)
    assert status.startswith('Ranked 5 labels')

    thr = _median_score(reference['det'], image, OTHER)
    kept, drawn = _expected_boxes(reference['det'], image, OTHER, thr)
    picture, table, status = client.predict(
        handle_file(image), '\n'.join(OTHER), thr, api_name='/detect')
    assert table['headers'] == ['name', 'score', 'x1', 'y1', 'x2', 'y2']
    _assert_boxes(table['data'], kept)
    with open(picture, 'rb') as f:
        np.testing.assert_array_equal(_read_png(f.read()), drawn)

    # errors: the message, not a stack trace nor a server path
    garbage = tmp_path / 'garbage.png'
    garbage.write_bytes(bytes(range(256)))
    for endpoint, arg in (('/classify', 5), ('/detect', 0.3)):
        for file, typed, message in (
                (image, ' , ', 'No label names'),
                (image, 'red circle, Red circle', 'cannot tell them apart'),
                (str(garbage), TYPED,
                 'Cannot read the image garbage.png: not an image file'),
                (None, TYPED, 'No image')):
            with pytest.raises(AppError, match=message) as info:
                client.predict(file and handle_file(file), typed, arg,
                               api_name=endpoint)
            assert 'Traceback' not in str(info.value)
            assert str(tmp_path) not in str(info.value)

    # the toy world's images and vocabularies are on the page as examples
    with urllib.request.urlopen(server + 'config') as r:
        config = json.load(r)
    samples = [c['props'].get('samples') for c in config['components']
               if c.get('type') == 'dataset']
    assert len(samples) == 4  # images and vocabularies, on both tabs
    flat = json.dumps(samples)
    assert '000000.png' in flat and 'orange circle' in flat


# -- in a real browser --------------------------------------------------------
@pytest.fixture(scope='module')
def browser():
    from mmovl.testing.browser import HeadlessChromium, find_chromium
    if find_chromium() is None:
        pytest.skip('No Chromium on this machine (apt-get install chromium, '
                    'or set MMOVL_CHROMIUM); test_http_api runs the same '
                    'flow without a browser.')
    pytest.importorskip('websocket', reason='websocket-client drives '
                        'Chromium (requirements/tests.txt)')
    with HeadlessChromium(height=1400) as chromium:
        yield chromium


def _table(browser, selector):
    """The rows of a Gradio Dataframe as the page shows them."""
    cells = browser.evaluate(
        f'[...document.querySelectorAll({json.dumps(selector)} + '
        "' [data-testid^=\"cell-\"]')].map(e => [e.dataset.row, "
        'e.dataset.col, e.innerText.trim()])')
    rows = {}
    for row, col, text in cells:
        rows.setdefault(int(row), {})[int(col)] = text
    return [[rows[r][c] for c in sorted(rows[r])] for r in sorted(rows)]


def _picture(browser, selector):
    src = browser.attribute(f'{selector} img', 'src')
    with urllib.request.urlopen(src) as r:
        return _read_png(r.read())


def _status(selector):
    """The text of a Gradio Markdown (not its progress timer)."""
    return f'{selector} [data-testid="markdown"]'


def _run(browser, button, status, before):
    """Click ``button`` and wait until the status text changes."""
    browser.click(button)
    status = _status(status)
    browser.wait_for(
        f'(() => {{ const t = document.querySelector({json.dumps(status)})'
        f'.innerText.trim(); return t && t !== {json.dumps(before)}; }})()',
        what=f'{status} to change after {button}')


def test_in_a_browser(browser, server, reference, tiny_world, tmp_path):
    browser.goto(server)
    browser.wait_for_element('#cls-run')

    # classification: upload an image, type names, rank
    image = _image(tiny_world, 4)
    browser.set_files('#cls-image input[type=file]', [image])
    browser.wait_for_element('#cls-image img')  # uploaded, shown
    browser.type_text('#cls-labels textarea', TYPED)
    _run(browser, '#cls-run', '#cls-status', '')
    assert browser.text(_status('#cls-status')).startswith('Ranked 5 labels')
    shown = _table(browser, '#cls-ranked')
    expected, drawn = _expected_ranking(reference['cls'], image, NAMES, 10,
                                        tmp_path)
    assert [r[:2] for r in shown] == [[str(i), n] for i, n, _ in expected]
    np.testing.assert_allclose([float(r[2]) for r in shown],
                               [r[2] for r in expected], atol=1.01e-4)
    np.testing.assert_array_equal(_picture(browser, '#cls-picture'), drawn)

    # an error is a message on the page
    browser.type_text('#cls-labels textarea', 'Red Circle, red circle')
    browser.click('#cls-run')
    browser.wait_for('document.querySelector(\'[data-testid="toast-text"]\')'
                     ' !== null', what='an error message')
    message = browser.texts('[data-testid="toast-text"]')[-1]
    assert 'cannot tell them apart' in message
    assert 'Traceback' not in message

    # detection: pick the example image and vocabulary with a click each
    browser.click('[role=tab][data-tab-id=detect]')
    browser.wait_for_element('#det-run')
    browser.click('#det-example-images button.gallery-item:nth-of-type(3)')
    browser.wait_for_element('#det-image img')
    browser.click('#det-example-vocabularies button.gallery-item',
                  text='the 6 unseen labels')
    browser.wait_for('document.querySelector("#det-labels textarea").value',
                     what='the example vocabulary')
    typed = browser.evaluate(
        'document.querySelector("#det-labels textarea").value')
    names = typed.split('\n')
    assert len(names) == 6
    image = _image(tiny_world, 2)
    thr = _median_score(reference['det'], image, names)
    browser.type_text('#det-thr input[type=number]', f'{thr:.2f}')
    _run(browser, '#det-run', '#det-status', '')
    thr = round(thr, 2)
    kept, drawn = _expected_boxes(reference['det'], image, names, thr)
    assert kept
    shown = _table(browser, '#det-boxes')
    assert browser.text(_status('#det-status')).startswith(
        f'{len(shown)} boxes scoring at least {thr:g} for 6 names')
    _assert_boxes([[r[0]] + [float(v) for v in r[1:]] for r in shown], kept)
    np.testing.assert_array_equal(_picture(browser, '#det-picture'), drawn)


# -- the command line ---------------------------------------------------
CONFIG_FILE = '''
from mmengine.config import read_base

with read_base():
    from {module} import *

model.teacher.checkpoint = {teacher!r}
{extra}
'''


def test_command_line(cls_checkpoints, vild_checkpoint, random_toy_teacher,
                      tiny_world, tmp_path):
    """demo/web_demo.py builds the page from the configs and checkpoints
    and serves it where it is told; --share is off unless asked for."""
    import runpy

    cls_cfg = tmp_path / 'mkt.py'
    cls_cfg.write_text(CONFIG_FILE.format(
        module='mmovl.configs.mkt.mkt_toy_vit_p8_10e_toy',
        teacher=random_toy_teacher,
        extra=f'model.backbone.checkpoint = {random_toy_teacher!r}'))
    det_cfg = tmp_path / 'vild.py'
    det_cfg.write_text(CONFIG_FILE.format(
        module='mmovl.configs.vild.vild_toy_r18_fpn_toy',
        teacher=random_toy_teacher,
        extra='model.test_cfg.rcnn.score_thr = 0.0'))
    script = osp.join(REPO, 'demo/web_demo.py')

    def serve(*args):
        launched = []

        def launch(self, **kwargs):
            launched.append((self, kwargs))

        with mock.patch.object(gr.Blocks, 'launch', launch), \
                mock.patch.object(sys, 'argv', ['web_demo.py', *args]):
            runpy.run_path(script, run_name='__main__')
        (page, kwargs), = launched
        return page.web_demo, kwargs

    app, kwargs = serve(str(cls_cfg), cls_checkpoints['mkt'][1],
                        '--det-config', str(det_cfg), '--det-checkpoint',
                        vild_checkpoint[1], '--examples', tiny_world)
    assert kwargs['server_name'] == '127.0.0.1'
    assert kwargs['server_port'] == 7860 and kwargs['share'] is False
    assert app.examples_dir == tiny_world
    image = _image(tiny_world)
    assert len(app.classify(image, TYPED)[0]) == 5
    assert app.detect(image, TYPED, 0.0)[1]

    # a detector alone, served to others; no toy world: no examples
    app, kwargs = serve('--det-config', str(det_cfg), '--det-checkpoint',
                        vild_checkpoint[1], '--server-name', '0.0.0.0',
                        '--port', '7999', '--share', '--examples',
                        str(tmp_path / 'nowhere'), '--max-labels', '3')
    assert app.classifier is None and app.examples_dir is None
    with pytest.raises(DemoError, match='at most 3'):
        app.detect(image, TYPED)
    assert (kwargs['server_name'], kwargs['server_port'],
            kwargs['share']) == ('0.0.0.0', 7999, True)

    for args in ([str(cls_cfg)], ['--det-config', str(det_cfg)], []):
        with mock.patch.object(sys, 'argv', ['web_demo.py', *args]), \
                pytest.raises(SystemExit):
            runpy.run_path(script, run_name='__main__')
