# Copyright (c) mmovl contributors. All rights reserved.
"""A web page for open-vocabulary recognition (Gradio): upload or pick an
image, type label names, and see them ranked (MKT, CPRFL, UniCL) or found
as named boxes (ViLD).

The work is done by plain functions that need no browser and no Gradio:
:meth:`WebDemo.classify` and :meth:`WebDemo.detect` take an image and the
text of a label box and return what the page shows, or raise
:class:`DemoError` with a message for the page. :func:`build_demo` puts
them on a page (``gradio.Blocks``); ``demo/web_demo.py`` is the command
line. Gradio is imported only by :func:`build_demo`, so this module imports
without it.

    >>> from mmovl.apis import OpenVocabClsInferencer
    >>> from mmovl.apis.web_demo import WebDemo
    >>> app = WebDemo(classifier=OpenVocabClsInferencer(  # doctest: +SKIP
    ...     'configs/mkt/mkt_toy_vit_p8_10e_toy.py', 'epoch_10.pth'))
    >>> rows, picture, status = app.classify(  # doctest: +SKIP
    ...     'data/toy_world/val/000001.png', 'red circle, blue square')
    >>> rows  # doctest: +SKIP
    [[1, 'red circle', 0.8123], [2, 'blue square', -0.4711]]
    >>> app.build().launch()  # doctest: +SKIP
"""
import functools
import os
import os.path as osp
import tempfile
import threading
import time
import warnings
from collections import OrderedDict
from typing import Any, Callable, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmengine.logging import MMLogger

from mmovl.utils.images import read_image
from mmovl.utils.vocabulary import alike_names, check_unique_names

__all__ = [
    'DemoError', 'LabelEmbeddingMemo', 'WebDemo', 'build_demo',
    'parse_labels', 'toy_world_examples'
]

ImageType = Union[str, os.PathLike, np.ndarray, None]

#: Short edge the drawn pictures are brought up to, so that names and
#: scores are legible on small images (the toy world's are 64 x 64).
MIN_PICTURE_SIDE = 256
#: Labels written on the classification picture at most (the table ranks
#: more).
MAX_DRAWN_LABELS = 5


class DemoError(ValueError):
    """A problem with what the user gave (no image, an unreadable one, an
    empty or ambiguous vocabulary); its message is shown on the page."""


def parse_labels(text: Optional[str], max_labels: int = 1000) -> List[str]:
    """The label names typed in the page's box: separated by commas and / or
    line ends, stripped; empty entries (a trailing comma, blank lines) are
    skipped.

    Args:
        text (str, optional): What was typed.
        max_labels (int): Refuse more names than this (a page shared with
            others should not encode unbounded vocabularies). Defaults to
            1000.

    Returns:
        list[str]: The names, in order.

    Raises:
        DemoError: No name; too many; a name given twice; or names that
            differ only in case or spacing, which CLIP encodes alike, so the
            model cannot tell them apart (their scores would be equal).

    Examples:
        >>> parse_labels('red circle, blue square\\n green star,')
        ['red circle', 'blue square', 'green star']
    """
    names = [
        name.strip() for line in str(text or '').splitlines()
        for name in line.split(',')
    ]
    names = [name for name in names if name]
    if not names:
        raise DemoError('No label names: type some, separated by commas or '
                        'one a line (e.g. "red circle, blue square").')
    if len(names) > max_labels:
        raise DemoError(f'{len(names)} label names: this page takes at most '
                        f'{max_labels}.')
    try:
        check_unique_names(names, 'label names', max_shown=3)
    except ValueError as e:
        # positions are 0-based indices into the list; name the names only
        repeated = str(e).split(': ', 1)[1].split(' (')[0]
        raise DemoError(f'Label names given more than once: {repeated}. '
                        'Give each name once.') from None
    alike = alike_names(names)
    if alike:
        shown = '; '.join(' / '.join(repr(n) for n in group)
                          for group in alike[:3])
        more = f' (and {len(alike) - 3} more groups)' if len(alike) > 3 \
            else ''
        raise DemoError(
            f'Label names that differ only in case or spacing: {shown}'
            f'{more}. CLIP reads them alike, so the model cannot tell them '
            'apart (their scores would be equal): keep one of each.')
    return names


def _image_name(image: Any) -> str:
    if isinstance(image, (str, os.PathLike)):
        return osp.basename(str(image))
    return 'the image'


def load_image(image: ImageType) -> Tuple[np.ndarray, List[str]]:
    """The page's image as a BGR array, with the warnings it gave.

    Args:
        image (str | PathLike | np.ndarray | PIL.Image.Image | None): A file
            (what the page passes), or an RGB array or PIL image (as Gradio
            and PIL give them).

    Returns:
        tuple[np.ndarray, list[str]]: The BGR (H, W, 3) uint8 image and the
        messages of warnings raised while reading it (a damaged JPEG).

    Raises:
        DemoError: No image, or one that cannot be read; the message names
            the file by its name, not its server path.
    """
    if image is None:
        raise DemoError('No image: upload one, or pick an example.')
    if hasattr(image, 'convert') and not isinstance(image, np.ndarray):
        image = np.asarray(image.convert('RGB'))  # a PIL image
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        if isinstance(image, np.ndarray):
            if image.ndim == 2:
                image = np.repeat(image[..., None], 3, axis=2)
            elif image.ndim == 3 and image.shape[2] == 4:
                image = image[..., :3]
            try:
                bgr = read_image(np.ascontiguousarray(image[..., ::-1]), 0)
            except (TypeError, ValueError, IndexError):
                raise DemoError(
                    'Cannot use the image: expected an RGB picture, got an '
                    f'array of shape {image.shape}.') from None
            if bgr.dtype != np.uint8:
                bgr = np.clip(bgr, 0, 255).astype(np.uint8)
        else:
            path = str(image)
            try:
                bgr = read_image(path, 0)
            except (OSError, ValueError, TypeError) as e:
                name = osp.basename(path)
                message = str(e).replace(path, name)
                raise DemoError(f'Cannot read the image: {message}') from None
    name = _image_name(image)
    messages = [
        str(w.message).replace(str(image), name)
        if isinstance(image, (str, os.PathLike)) else str(w.message)
        for w in caught
    ]
    return bgr, messages


def _picture_side(image: np.ndarray) -> Optional[int]:
    """Short edge to draw at: small images are brought up to
    :data:`MIN_PICTURE_SIDE`; others keep their size (None)."""
    short = min(image.shape[:2])
    return MIN_PICTURE_SIDE if short < MIN_PICTURE_SIDE else None


def _teacher_memory_size(model: torch.nn.Module) -> int:
    teacher = getattr(model, 'teacher', None)
    return len(getattr(teacher, '_memory', None) or ())


def bound_teacher_memory(model: torch.nn.Module, limit: int) -> bool:
    """Forget the label embeddings that the model's CLIP teacher keeps in
    memory once it keeps more than ``limit`` vocabularies (it keeps every
    one it encoded, which a page that anyone can type into would grow
    without end).

    Returns:
        bool: Whether the teacher's memory was cleared.
    """
    teacher = getattr(model, 'teacher', None)
    if _teacher_memory_size(model) > limit and \
            callable(getattr(teacher, 'clear_cache', None)):
        teacher.clear_cache()
        return True
    return False


class LabelEmbeddingMemo:
    """Keep a classifier's label embeddings of the last few vocabularies,
    so that a vocabulary that comes back (another user's, the example
    vocabularies in turn) is not encoded again.

    The classifiers keep the embeddings of their current vocabulary only,
    or, through the CLIP teacher, of every vocabulary the teacher encoded
    (MKT, and CPRFL with a frozen tower). Models that encode with their own
    text tower (UniCL, CPRFL with a trained tower, MKT with a learned
    prompt) encode a vocabulary again whenever it comes back after another.
    This memo wraps the model's embedding method (``label_embeds``, or
    UniCL's ``_label_prototypes``) on this model object only: in eval mode,
    it returns what the method returned for the same vocabulary
    (``model.vocabulary``) if that is among the last ``size``. The weights
    must not change meanwhile (a demo's do not); in training mode the
    method runs as it is.

    Args:
        model (torch.nn.Module): An open-vocabulary classifier.
        size (int): Vocabularies kept. Defaults to 16.

    Attributes:
        hits (int): Calls answered from the memo.
        misses (int): Calls that encoded.
    """

    METHODS = ('label_embeds', '_label_prototypes')

    def __init__(self, model: torch.nn.Module, size: int = 16) -> None:
        if size < 1:
            raise ValueError(f'size must be at least 1, got {size}')
        self.model = model
        self.size = size
        self.hits = self.misses = 0
        self._store: 'OrderedDict[tuple, Any]' = OrderedDict()
        self.method = next((name for name in self.METHODS
                            if callable(getattr(model, name, None))), None)
        if self.method is not None:
            setattr(model, self.method,
                    self._wrap(getattr(model, self.method)))

    def _wrap(self, original: Callable) -> Callable:

        @functools.wraps(original)
        def memoised(*args, **kwargs):
            vocabulary = getattr(self.model, 'vocabulary', None)
            if self.model.training or vocabulary is None or args or kwargs:
                return original(*args, **kwargs)
            key = tuple(vocabulary)
            if key in self._store:
                self._store.move_to_end(key)
                self.hits += 1
                return self._store[key]
            embeds = original()
            self.misses += 1
            self._store[key] = embeds
            while len(self._store) > self.size:
                self._store.popitem(last=False)
            # What the teacher kept is kept here too; bound it alike.
            bound_teacher_memory(self.model, self.size)
            return embeds

        memoised.memo = self
        return memoised

    def __contains__(self, vocabulary: Sequence[str]) -> bool:
        return tuple(vocabulary) in self._store

    def __len__(self) -> int:
        return len(self._store)

    def clear(self) -> None:
        """Forget every kept vocabulary."""
        self._store.clear()


def toy_world_examples(root: str,
                       num_images: int = 6) -> Tuple[List[str], dict]:
    """The toy world's example images and vocabularies, if it exists.

    Args:
        root (str): The toy world's folder (``make_toy_world.py``'s output).
        num_images (int): Test images to offer. Defaults to 6.

    Returns:
        tuple[list[str], dict[str, str]]: The first ``num_images`` images of
        ``val/`` (by name), and ``{title: names one a line}`` of
        ``annotations/labels.txt`` and ``unseen_labels.txt``; empty where
        they are missing.
    """
    images: List[str] = []
    val = osp.join(root, 'val')
    if osp.isdir(val):
        images = [
            osp.join(val, f) for f in sorted(os.listdir(val))
            if f.endswith('.png')
        ][:num_images]
    vocabularies = {}
    for title, file in (('all {} labels', 'labels.txt'),
                        ('the {} unseen labels', 'unseen_labels.txt')):
        path = osp.join(root, 'annotations', file)
        if osp.isfile(path):
            with open(path, encoding='utf-8') as f:
                names = [line.strip() for line in f if line.strip()]
            if names:
                vocabularies[title.format(len(names))] = '\n'.join(names)
    return images, vocabularies


class WebDemo:
    """What the web page does, as plain functions.

    One request at a time per page: the inferencers keep their vocabulary
    as state, so :meth:`classify` and :meth:`detect` hold a lock while they
    set it and run. Label embeddings are kept per vocabulary between
    requests: the inferencer does not encode the vocabulary it has already,
    a :class:`LabelEmbeddingMemo` keeps the classifier's last
    ``cache_size`` vocabularies, and the detector's CLIP teacher keeps
    those it encoded (bounded to ``cache_size`` vocabularies).

    Args:
        classifier (OpenVocabClsInferencer, optional): For the ranking tab
            (MKT, CPRFL or UniCL).
        detector (OpenVocabDetInferencer, optional): For the detection tab
            (ViLD).
        examples_dir (str, optional): A toy world whose images and
            vocabularies the page offers as examples (none where it does
            not exist). Defaults to None.
        cache_size (int): Vocabularies whose label embeddings are kept.
            Defaults to 16.
        max_labels (int): Most label names a request may give. Defaults to
            1000.
    """

    def __init__(self,
                 classifier=None,
                 detector=None,
                 examples_dir: Optional[str] = None,
                 cache_size: int = 16,
                 max_labels: int = 1000) -> None:
        if classifier is None and detector is None:
            raise ValueError('Give a classifier, a detector or both.')
        self.classifier = classifier
        self.detector = detector
        self.examples_dir = examples_dir
        self.cache_size = cache_size
        self.max_labels = max_labels
        self._lock = threading.Lock()
        self.memo = None
        if classifier is not None:
            self.memo = LabelEmbeddingMemo(classifier.model, cache_size)

    # -- classification ---------------------------------------------------
    def classify(self,
                 image: ImageType,
                 labels_text: Optional[str],
                 topk: Optional[int] = 10
                 ) -> Tuple[List[list], np.ndarray, str]:
        """Rank the typed label names on the image.

        Args:
            image (str | PathLike | np.ndarray | PIL.Image.Image | None): An
                image file, or an RGB array / PIL image.
            labels_text (str): Label names, comma-separated or one a line.
            topk (int, optional): Rows of the table (None: every label);
                the picture names the top ``min(topk, 5)``. Defaults to 10.

        Returns:
            tuple: ``rows`` (``[rank, name, score]``, best first, scores
            rounded to 4 decimals: the model's own, as
            :class:`OpenVocabClsInferencer` gives them: MKT's logits,
            CPRFL's sigmoid probabilities, UniCL's cosine similarities),
            ``picture`` (RGB array: the image with the top names and scores
            written on it) and ``status`` (one line of Markdown: what was
            done, and any warning).

        Raises:
            DemoError: See :func:`parse_labels` and :func:`load_image`.
        """
        if self.classifier is None:
            raise DemoError('This page has no classifier.')
        topk = self._check_topk(topk)
        names = parse_labels(labels_text, self.max_labels)
        inferencer = self.classifier
        with self._lock:  # warnings are caught process-wide
            bgr, notes = load_image(image)
            start = time.perf_counter()
            misses = self.memo.misses
            self._set_vocabulary(inferencer, names)
            # The inferencer's own steps, without its progress bar.
            preds = []
            for data in inferencer.preprocess([bgr]):
                preds.extend(inferencer.forward(data))
            encoded = self.memo.misses > misses
            result = inferencer.postprocess(preds, None, topk=topk)[0]
            with tempfile.TemporaryDirectory() as tmp:
                picture = inferencer.visualize(
                    [bgr],
                    preds,
                    show_dir=tmp,
                    resize=_picture_side(bgr),
                    topk=min(topk or len(names), MAX_DRAWN_LABELS))[0]
            seconds = time.perf_counter() - start
        rows = [[rank, name, round(score, 4)] for rank, (name, score) in
                enumerate(zip(result['labels'], result['scores']), 1)]
        how = 'encoded now' if encoded else 'from the cache'
        status = (f'Ranked {len(names)} labels in {seconds:.2f} s '
                  f'(label embeddings {how}).')
        return rows, picture, self._status(status, notes)

    # -- detection --------------------------------------------------------
    def detect(self,
               image: ImageType,
               labels_text: Optional[str],
               score_thr: float = 0.3) -> Tuple[np.ndarray, List[list], str]:
        """Find the typed category names in the image.

        Args:
            image (str | PathLike | np.ndarray | PIL.Image.Image | None): An
                image file, or an RGB array / PIL image.
            labels_text (str): Category names, comma-separated or one a
                line. Names the checkpoint was not trained on are weighed as
                novel (see :class:`OpenVocabDetInferencer`).
            score_thr (float): Boxes scoring at least this are listed and
                drawn. Defaults to 0.3.

        Returns:
            tuple: ``picture`` (RGB array: the image with the boxes, names
            and scores drawn), ``rows`` (``[name, score, x1, y1, x2, y2]``
            per box, best first; scores to 4 decimals, corners in image
            pixels to 1 decimal) and ``status`` (one line of Markdown).

        Raises:
            DemoError: See :func:`parse_labels` and :func:`load_image`; a
                score threshold outside [0, 1].
        """
        if self.detector is None:
            raise DemoError('This page has no detector.')
        try:
            score_thr = float(score_thr)
        except (TypeError, ValueError):
            raise DemoError(f'The score threshold must be a number, got '
                            f'{score_thr!r}.') from None
        if not 0 <= score_thr <= 1:
            raise DemoError('The score threshold must be between 0 and 1, '
                            f'got {score_thr}.')
        names = parse_labels(labels_text, self.max_labels)
        inferencer = self.detector
        with self._lock:  # warnings are caught process-wide
            bgr, notes = load_image(image)
            start = time.perf_counter()
            encoded = self._set_vocabulary(inferencer, names)
            out = inferencer(
                bgr,
                return_vis=True,
                no_save_vis=True,
                pred_score_thr=score_thr,
                resize=_picture_side(bgr))
            bound_teacher_memory(inferencer.model, 2 * self.cache_size)
            seconds = time.perf_counter() - start
        pred, picture = out['predictions'][0], out['visualization'][0]
        boxes = zip(pred['names'], pred['scores'], pred['bboxes'])
        kept = sorted((box for box in boxes if box[1] >= score_thr),
                      key=lambda box: -box[1])
        rows = [[name, round(score, 4)] + [round(v, 1) for v in box]
                for name, score, box in kept]
        how = 'encoded now' if encoded else 'from the cache'
        status = (f'{len(rows)} boxes scoring at least {score_thr:g} for '
                  f'{len(names)} names in {seconds:.2f} s (label embeddings '
                  f'{how}).')
        return picture, rows, self._status(status, notes)

    # -- shared -----------------------------------------------------------
    @staticmethod
    def _check_topk(topk) -> Optional[int]:
        if topk is None:
            return None
        try:
            value = int(topk)
        except (TypeError, ValueError):
            value = None
        if value is None or value != topk or value < 1:
            raise DemoError(f'The number of labels to show must be a '
                            f'positive whole number, got {topk!r}.')
        return value

    def _set_vocabulary(self, inferencer, names: List[str]) -> bool:
        """Give the inferencer the names; whether its CLIP teacher took in
        a vocabulary it did not have in memory (encoded it, or read it from
        its disk cache)."""
        before = _teacher_memory_size(inferencer.model)
        try:
            inferencer.set_vocabulary(names)
        except ValueError as e:  # what parse_labels did not foresee
            raise DemoError(str(e)) from None
        return _teacher_memory_size(inferencer.model) > before

    @staticmethod
    def _status(status: str, notes: List[str]) -> str:
        return ' '.join([status] + [f'**Warning:** {n}' for n in notes])

    def build(self, **kwargs):
        """The page (a ``gradio.Blocks``); see :func:`build_demo`."""
        return build_demo(self, **kwargs)


def build_demo(app: Union[WebDemo, Any, None] = None,
               detector=None,
               examples_dir: Optional[str] = None,
               topk: int = 10,
               score_thr: float = 0.3,
               title: str = 'mmovl: open-vocabulary recognition'):
    """The web page: a tab per task, an image, a box for label names, and
    the toy world's examples one click away.

    Args:
        app (WebDemo | OpenVocabClsInferencer, optional): The demo, or the
            classifier to make one of (with ``detector``).
        detector (OpenVocabDetInferencer, optional): The detector, when
            ``app`` is not a :class:`WebDemo`. Defaults to None.
        examples_dir (str, optional): The toy world of the examples, when
            ``app`` is not a :class:`WebDemo`. Defaults to None.
        topk (int): Labels the ranking shows at first. Defaults to 10.
        score_thr (float): The detection threshold at first. Defaults to
            0.3.
        title (str): The page's title.

    Returns:
        gradio.Blocks: The page; ``launch()`` serves it. Its functions are
        also a Gradio API: ``/classify`` (image, labels, top k) and
        ``/detect`` (image, labels, score threshold).
    """
    import gradio as gr

    if not isinstance(app, WebDemo):
        app = WebDemo(app, detector, examples_dir=examples_dir)
    images, vocabularies = toy_world_examples(app.examples_dir) \
        if app.examples_dir else ([], {})

    def on_page(fn: Callable) -> Callable:
        """``fn`` with its errors as page messages, never a stack trace."""

        @functools.wraps(fn)
        def run(*args):
            try:
                return fn(*args)
            except DemoError as e:
                raise gr.Error(str(e), print_exception=False) from None
            except Exception as e:
                MMLogger.get_current_instance().exception(
                    f'web demo: {fn.__name__} failed')
                raise gr.Error(
                    f'Something went wrong ({type(e).__name__}: {e}); the '
                    'server log has the details.',
                    print_exception=False) from None

        return run

    def examples(image_box, labels_box, kind: str):
        if images:
            gr.Examples([[p] for p in images], inputs=[image_box],
                        label='Example images (the toy world)',
                        examples_per_page=len(images), cache_examples=False,
                        elem_id=f'{kind}-example-images')
        if vocabularies:
            gr.Examples([[v] for v in vocabularies.values()],
                        inputs=[labels_box],
                        example_labels=list(vocabularies),
                        label='Example vocabularies (the toy world)',
                        cache_examples=False,
                        elem_id=f'{kind}-example-vocabularies')

    def image_input(elem_id: str):
        """An image box whose unreadable uploads are page messages (Gradio
        opens them with PIL before any function of ours sees them)."""
        box = gr.Image(type='filepath', label='Image',
                       sources=['upload', 'clipboard'], elem_id=elem_id)
        preprocess = box.preprocess

        def checked(payload):
            try:
                return preprocess(payload)
            except gr.Error:
                raise
            except Exception:
                name = getattr(payload, 'orig_name', None) or 'the file'
                raise gr.Error(
                    f'Cannot read the image {name}: not an image file, or a '
                    'corrupt one.', print_exception=False) from None

        box.preprocess = checked
        return box

    placeholder = 'red circle, blue square, purple star\n(or one a line)'
    with gr.Blocks(title=title, analytics_enabled=False) as demo:
        gr.Markdown(
            f'## {title}\nUpload or pick an image, type any label names '
            '(comma-separated or one a line), and run.')
        with gr.Tabs():
            if app.classifier is not None:
                kind = type(app.classifier.model).__name__
                with gr.Tab(f'Rank labels ({kind})', id='classify'):
                    with gr.Row():
                        with gr.Column():
                            c_image = image_input('cls-image')
                            c_labels = gr.Textbox(
                                lines=5, label='Label names',
                                placeholder=placeholder, elem_id='cls-labels')
                            c_topk = gr.Slider(
                                1, 100, value=topk, step=1,
                                label='Labels to show', elem_id='cls-topk')
                            c_run = gr.Button(
                                'Rank', variant='primary', elem_id='cls-run')
                        with gr.Column():
                            c_status = gr.Markdown(
                                label='Status', elem_id='cls-status')
                            c_rows = gr.Dataframe(
                                headers=['rank', 'label', 'score'],
                                datatype=['number', 'str', 'number'],
                                label='Ranked labels (the model\'s scores)',
                                interactive=False, elem_id='cls-ranked')
                            c_picture = gr.Image(
                                label='Top labels', interactive=False,
                                format='png', elem_id='cls-picture')
                    examples(c_image, c_labels, 'cls')
                    c_run.click(
                        on_page(app.classify),
                        inputs=[c_image, c_labels, c_topk],
                        outputs=[c_rows, c_picture, c_status],
                        api_name='classify')
            if app.detector is not None:
                kind = type(app.detector.model).__name__
                with gr.Tab(f'Detect ({kind})', id='detect'):
                    with gr.Row():
                        with gr.Column():
                            d_image = image_input('det-image')
                            d_labels = gr.Textbox(
                                lines=5, label='Category names',
                                placeholder=placeholder, elem_id='det-labels')
                            d_thr = gr.Slider(
                                0, 1, value=score_thr, step=0.01,
                                label='Score threshold', elem_id='det-thr')
                            d_run = gr.Button(
                                'Detect', variant='primary',
                                elem_id='det-run')
                        with gr.Column():
                            d_status = gr.Markdown(
                                label='Status', elem_id='det-status')
                            d_picture = gr.Image(
                                label='Boxes', interactive=False,
                                format='png', elem_id='det-picture')
                            d_rows = gr.Dataframe(
                                headers=['name', 'score', 'x1', 'y1', 'x2',
                                         'y2'],
                                datatype=['str'] + ['number'] * 5,
                                label='Boxes (image pixels)',
                                interactive=False, elem_id='det-boxes')
                    examples(d_image, d_labels, 'det')
                    d_run.click(
                        on_page(app.detect),
                        inputs=[d_image, d_labels, d_thr],
                        outputs=[d_picture, d_rows, d_status],
                        api_name='detect')
    demo.web_demo = app
    return demo
