# Copyright (c) mmovl contributors. All rights reserved.
"""ONNX export of mmovl's open-vocabulary classifiers, with the vocabulary
as an input.

Two graphs per model:

- the **image graph** (:func:`export_cls_onnx`): ``image`` (N, 3, H, W)
  float32 and ``label_embeds`` (C, D) float32 in, ``scores`` (N, C) out,
  equal to the model's ``pred_score`` for that vocabulary. N and C are
  dynamic, so a deployment changes its vocabulary by feeding other label
  embeddings, without exporting again. By default the data preprocessor is
  part of the graph: ``image`` holds 0-255 pixel values in the channel order
  the config's test pipeline packs them (BGR for files read by mmcv, which
  the preprocessor's ``to_rgb=True`` flips), resized and cropped to H x W;
  the graph flips the channels and subtracts the mean / divides by the std
  itself. ``include_preprocessor=False`` takes images already normalised.
- the **text graph** (:func:`export_text_onnx`): ``tokens`` (P, L) int64,
  open_clip's tokenizer output for P prompts, in; ``text_embeds`` (P, D)
  out, one embedding per prompt as the model's own label encoder computes it
  before averaging over templates. The template filling and averaging stay
  in Python: :func:`label_embeds_from_names` does them from the recipe the
  export writes into the graph's metadata (templates, name substitutions,
  whether the average is normalised, the tokenizer).

What ``pred_score`` is per model (and so what the image graph computes):

- ``MKT``: the two-stream head's scores (global CLS + mean of the top-k
  patch similarities, each stream L2-normalised across the C labels,
  averaged); the label embeddings are the CLIP teacher's normalised
  template averages, or, with a stage-2 prompt learner, its prompts through
  the frozen text tower (the text graph then holds the learned vectors).
- ``CPRFL``: the sigmoid of the head's logits (prompt initialisation, the
  visual-semantic interaction block over the visual tokens and all C
  prompts, each refined prompt against its own prompt); the label
  embeddings are the raw template averages of the model's own trained text
  tower (or of the frozen teacher's, normalised, with
  ``train_text_encoder=False``). The head is a pure function of them, so it
  exports; its cost grows with C squared (attention over all prompts).
- ``UniCL``: the cosine similarity of the normalised image embedding with
  the label prototypes (normalised template averages of its text tower).
"""
import json
import os
import os.path as osp
import warnings
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = [
    'OpenVocabClsExportWrapper', 'OpenVocabTextExportWrapper',
    'export_cls_onnx', 'export_text_onnx', 'label_embeds_from_names',
    'model_label_embeds', 'build_classifier', 'read_onnx_metadata',
    'model_image_size', 'DEFAULT_OPSET'
]

#: The ONNX opset of the exported graphs (TopK with a tensor k, LayerNorm
#: as one op).
DEFAULT_OPSET = 18

_KINDS = ('MKT', 'CPRFL', 'UniCL')
_META_PREFIX = 'mmovl.'


def _kind(model: nn.Module) -> str:
    from mmovl.models import CPRFL, MKT, UniCL
    for cls in (MKT, CPRFL, UniCL):
        if isinstance(model, cls):
            return cls.__name__
    raise TypeError(f'{type(model).__name__} is not one of the '
                    f'open-vocabulary classifiers that export ({_KINDS}).')


def build_classifier(config,
                     checkpoint: Optional[str] = None,
                     return_meta: bool = False):
    """Build an open-vocabulary classifier from its config, load its
    checkpoint (mmovl's safe loader, which refuses a checkpoint of another
    model) and put it in eval mode.

    Args:
        config (str | mmengine.Config): The config (file).
        checkpoint (str, optional): The weights. Defaults to None (as the
            config builds them).
        return_meta (bool): Also return the checkpoint's ``meta`` (e.g.
            ``meta['dataset_meta']['classes']``; empty without a
            checkpoint). Defaults to False.

    Returns:
        nn.Module | tuple: The model, on the CPU, in eval mode (and the
        meta dict).
    """
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS

    from mmovl.apis import load_model_weights
    cfg = config if isinstance(config, Config) else Config.fromfile(config)
    model_cfg = cfg.model.copy()
    if cfg.get('data_preprocessor') is not None:
        model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(model_cfg)
    _kind(model)
    meta = load_model_weights(model, checkpoint) if checkpoint else {}
    model.eval()
    return (model, meta) if return_meta else model


def model_label_embeds(model: nn.Module,
                       names: Sequence[str]) -> torch.Tensor:
    """The label embeddings the model scores ``names`` with in eval mode
    (what the image graph's ``label_embeds`` must be), from the model itself:
    sets its vocabulary to ``names``.

    Args:
        model (nn.Module): An MKT, CPRFL or UniCL model in eval mode.
        names (Sequence[str]): The label names.

    Returns:
        torch.Tensor: (C, D) float32 embeddings.
    """
    kind = _kind(model)
    model.set_vocabulary(list(names))
    with torch.no_grad():
        if kind == 'UniCL':
            # UniCL keeps its prototypes behind predict()
            return model._label_prototypes().detach().clone()
        return model.label_embeds().detach().clone()


# -- the image graph ---------------------------------------------------------
class OpenVocabClsExportWrapper(nn.Module):
    """``forward(image, label_embeds) -> scores``: an open-vocabulary
    classifier's ``pred_score`` as a function of the images and the label
    embeddings of any vocabulary, for export.

    Args:
        model (nn.Module): An ``MKT``, ``CPRFL`` or ``UniCL`` model (in eval
            mode; its data preprocessor is used when
            ``include_preprocessor``).
        include_preprocessor (bool): Take 0-255 images in the channel order
            of the config's test pipeline and apply the data preprocessor's
            channel flip (``to_rgb``) and mean / std in the graph. False:
            take images the preprocessor has already normalised.
            Defaults to True.

    Examples:
        >>> wrapper = OpenVocabClsExportWrapper(model)  # doctest: +SKIP
        >>> wrapper(images_0_255, model_label_embeds(model, names))
    """

    def __init__(self,
                 model: nn.Module,
                 include_preprocessor: bool = True) -> None:
        super().__init__()
        self.kind = _kind(model)
        self.model = model
        self.include_preprocessor = include_preprocessor
        self.to_rgb = False
        mean = std = None
        if include_preprocessor:
            pre = model.data_preprocessor
            if getattr(pre, 'pad_size_divisor', 1) > 1:
                raise ValueError(
                    'The data preprocessor pads images to a multiple of '
                    f'{pre.pad_size_divisor}; the exported graph takes '
                    'images of one fixed size: pad them before, and export '
                    'with include_preprocessor=False.')
            self.to_rgb = bool(getattr(pre, 'to_rgb', False))
            if getattr(pre, '_enable_normalize', False):
                mean = pre.mean.detach().float().view(1, -1, 1, 1)
                std = pre.std.detach().float().view(1, -1, 1, 1)
        self.register_buffer('mean', mean, persistent=False)
        self.register_buffer('std', std, persistent=False)

    @property
    def channel_order(self) -> str:
        """str: What ``image`` holds: ``'BGR 0-255'`` (flipped to RGB in the
        graph), ``'RGB 0-255'`` or ``'normalised'``."""
        if not self.include_preprocessor:
            return 'normalised'
        return 'BGR 0-255' if self.to_rgb else 'RGB 0-255'

    def preprocess(self, image: torch.Tensor) -> torch.Tensor:
        """The data preprocessor's work on a batch (N, 3, H, W)."""
        if not self.include_preprocessor:
            return image
        if self.to_rgb:
            image = image.flip(1)
        image = image.float()
        if self.mean is not None:
            image = (image - self.mean) / self.std
        return image

    def forward(self, image: torch.Tensor,
                label_embeds: torch.Tensor) -> torch.Tensor:
        """Score the images against the labels.

        Args:
            image (torch.Tensor): (N, 3, H, W), see ``include_preprocessor``.
            label_embeds (torch.Tensor): (C, D), as
                :func:`model_label_embeds` or
                :func:`label_embeds_from_names` give them.

        Returns:
            torch.Tensor: (N, C) scores, the model's ``pred_score``.
        """
        model = self.model
        x = self.preprocess(image)
        if self.kind == 'UniCL':
            return model.encode_image(x) @ label_embeds.t()
        scores = model.head(model.extract_feat(x), label_embeds)
        if self.kind == 'CPRFL':
            scores = scores.sigmoid()
        return scores


def model_image_size(model: nn.Module) -> Optional[Tuple[int, int]]:
    """The input size a ViT was built for (its position embeddings fix
    it), else None."""
    for owner in (getattr(model, 'backbone', None), getattr(model, 'clip',
                                                            None)):
        visual = getattr(owner, 'visual', None)
        size = getattr(visual, 'image_size', None)
        if size is not None:
            size = (size, size) if isinstance(size, int) else tuple(size)
            return int(size[0]), int(size[1])
    return None


def _label_dim(model: nn.Module, kind: str) -> int:
    if kind == 'MKT':
        return int(model.head.out_channels)
    if kind == 'CPRFL':
        return int(model.head.text_channels)
    return int(model.clip.text_projection.shape[1])


def _export(module: nn.Module, args: tuple, out_file: str,
            input_names: List[str], output_names: List[str],
            dynamic: Dict[str, Dict[int, str]], opset: int,
            dynamo: bool) -> None:
    """torch.onnx.export with named dynamic axes, either exporter."""
    out_dir = osp.dirname(osp.abspath(out_file))
    os.makedirs(out_dir, exist_ok=True)
    # nn.MultiheadAttention's inference fast path is one fused op that no
    # ONNX opset has: trace the plain ops instead
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        _run_exporter(module, args, out_file, input_names, output_names,
                      dynamic, opset, dynamo)
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)


def _run_exporter(module: nn.Module, args: tuple, out_file: str,
                  input_names: List[str], output_names: List[str],
                  dynamic: Dict[str, Dict[int, str]], opset: int,
                  dynamo: bool) -> None:
    kwargs = dict(input_names=input_names, output_names=output_names,
                  opset_version=opset, dynamo=dynamo)
    if dynamo:
        from torch.export import Dim
        dims: Dict[str, Dim] = {}
        shapes = {}
        for name in input_names:
            axes = dynamic.get(name, {})
            shapes[name] = {
                axis: dims.setdefault(label, Dim(label, min=1))
                for axis, label in axes.items()
            } or None
        kwargs.update(dynamic_shapes=shapes, external_data=False,
                      verbose=False)
    else:
        kwargs.update(dynamic_axes=dynamic, do_constant_folding=True)
    with warnings.catch_warnings():
        if not dynamo:
            # torch >= 2.9 calls the TorchScript exporter legacy
            warnings.simplefilter('ignore', DeprecationWarning)
            warnings.simplefilter('ignore', torch.jit.TracerWarning)
            # the graphs index with non-negative indices only (argmax,
            # clamped look-ups), which the warning is about
            warnings.filterwarnings(
                'ignore', 'Exporting aten::index operator of advanced')
        torch.onnx.export(module, args, out_file, **kwargs)


def _write_metadata(path: str, metadata: Dict[str, str]) -> None:
    """Add ``mmovl.*`` key-value strings to the ONNX file's metadata."""
    import onnx
    proto = onnx.load(path)
    keep = [p for p in proto.metadata_props
            if not p.key.startswith(_META_PREFIX)]
    del proto.metadata_props[:]
    proto.metadata_props.extend(keep)
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key = _META_PREFIX + key
        entry.value = str(value)
    onnx.save(proto, path)


def read_onnx_metadata(model: Union[str, 'object']) -> Dict[str, str]:
    """The ``mmovl.*`` metadata of an exported graph (without the prefix).

    Args:
        model (str | onnxruntime.InferenceSession): The ONNX file or a
            session of it.

    Returns:
        dict[str, str]: E.g. ``{'graph': 'text', 'templates': '[...]'}``.
    """
    if isinstance(model, (str, os.PathLike)):
        import onnx
        props = {p.key: p.value for p in onnx.load(str(model)).metadata_props}
    else:
        props = dict(model.get_modelmeta().custom_metadata_map)
    return {
        k[len(_META_PREFIX):]: v
        for k, v in props.items() if k.startswith(_META_PREFIX)
    }


@torch.no_grad()
def export_cls_onnx(model: nn.Module,
                    out_file: str,
                    image_size: Optional[Sequence[int]] = None,
                    include_preprocessor: bool = True,
                    opset: int = DEFAULT_OPSET,
                    dynamo: bool = True,
                    example_labels: int = 5,
                    example_images: int = 2) -> str:
    """Export the image side of an open-vocabulary classifier to ONNX.

    The graph: inputs ``image`` (N, 3, H, W) float32 and ``label_embeds``
    (C, D) float32, output ``scores`` (N, C), with N and C dynamic and H, W
    fixed (a ViT's position embeddings fix them). See
    :class:`OpenVocabClsExportWrapper` for what ``image`` holds and the
    module docstring for what the scores are. The graph's metadata records
    the model kind, the image size and channel order, the preprocessor's
    mean / std and the label embedding width.

    Args:
        model (nn.Module): An MKT, CPRFL or UniCL model (put in eval mode).
        out_file (str): The ``.onnx`` file to write.
        image_size (Sequence[int], optional): (H, W). Defaults to None: the
            ViT's own input size (an error for other backbones).
        include_preprocessor (bool): See
            :class:`OpenVocabClsExportWrapper`. Defaults to True.
        opset (int): ONNX opset. Defaults to :data:`DEFAULT_OPSET`.
        dynamo (bool): torch's ``torch.export``-based exporter (its default
            since torch 2.9; needs ``onnxscript``). False: the TorchScript
            tracer, which torch deprecates, about 8x faster to run on the
            toy models. Both graphs give the model's scores (mmovl's tests
            check both). Defaults to True.
        example_labels (int): C of the example input traced (>= 2).
            Defaults to 5.
        example_images (int): N of the example input (>= 2). Defaults to 2.

    Returns:
        str: ``out_file``.
    """
    model.eval()
    wrapper = OpenVocabClsExportWrapper(model, include_preprocessor).eval()
    kind = wrapper.kind
    if image_size is None:
        image_size = model_image_size(model)
        if image_size is None:
            raise ValueError(f'{type(model.backbone).__name__} has no fixed '
                             'input size: pass image_size=(H, W).')
    height, width = (int(s) for s in image_size)
    dim = _label_dim(model, kind)
    gen = torch.Generator().manual_seed(0)
    image = torch.rand(example_images, 3, height, width, generator=gen)
    if include_preprocessor:
        image = image * 255
    labels = F.normalize(
        torch.randn(example_labels, dim, generator=gen), dim=-1)
    _export(
        wrapper, (image, labels),
        out_file,
        input_names=['image', 'label_embeds'],
        output_names=['scores'],
        dynamic=dict(
            image={0: 'num_images'},
            label_embeds={0: 'num_labels'},
            scores={0: 'num_images', 1: 'num_labels'}),
        opset=opset,
        dynamo=dynamo)
    meta = dict(
        graph='image',
        model=kind,
        image_size=json.dumps([height, width]),
        image_input=wrapper.channel_order,
        label_dim=dim,
        scores={
            'MKT': 'two-stream scores, each stream normalised across labels',
            'CPRFL': 'sigmoid of the head logits',
            'UniCL': 'cosine similarity'
        }[kind])
    if wrapper.mean is not None:
        meta.update(
            mean=json.dumps(wrapper.mean.flatten().tolist()),
            std=json.dumps(wrapper.std.flatten().tolist()))
    _write_metadata(out_file, meta)
    return out_file


# -- the text graph ----------------------------------------------------------
class _PromptLearnerText(nn.Module):
    """MKT's stage-2 label encoder as a function of token ids alone: the
    token embeddings of the template's positions replaced by the learned
    vectors, then the frozen text tower (as
    ``MKTPromptLearner.encode``).

    The positions follow from the ids: ``'context'`` replaces positions
    1..n_ctx; ``'all_but_name'`` replaces the start token and the context
    (positions 0..n_ctx) and the suffix and end token (the len(suffix)
    positions before the end token, and the end token), each by the learned
    row of its id. :func:`label_embeds_from_names` checks that every prompt
    holds the template's tokens there (as the learner's tokenisation does).
    """

    def __init__(self, learner: nn.Module, clip: nn.Module,
                 tokenizer) -> None:
        super().__init__()
        from mmovl.models.prompts import get_text_tower
        self.tower = get_text_tower(clip)
        # registered, so that their weights are the graph's initializers
        self.token_embedding = self.tower.token_embedding
        self.transformer = self.tower.transformer
        self.ln_final = self.tower.ln_final
        self.learn = learner.learn
        self.n_ctx = learner.n_ctx
        learned = learner.learned_state().float().clone()
        self.register_buffer('learned', learned, persistent=False)
        if self.learn == 'all_but_name':
            vocab = self.token_embedding.weight.shape[0]
            lut = torch.full((vocab, ), -1, dtype=torch.long)
            lut[list(learner.learned_ids)] = torch.arange(len(learned))
            self.register_buffer('lut', lut, persistent=False)
            self.n_suffix = len(learner.suffix_ids)
            # open_clip's tokens of '': start, end, padding
            self.eot_id = int(tokenizer(['']).flatten()[1])

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        from mmovl.models.prompts import encode_text_embeds
        embeds = self.token_embedding(tokens)
        learned = self.learned.to(embeds.dtype)
        if self.learn == 'context':
            ctx = learned.unsqueeze(0).expand(tokens.shape[0], -1, -1)
            embeds = torch.cat(
                [embeds[:, :1], ctx, embeds[:, 1 + self.n_ctx:]], dim=1)
        else:
            pos = torch.arange(tokens.shape[1], device=tokens.device)[None]
            eot = (tokens == self.eot_id).long().argmax(dim=-1,
                                                        keepdim=True)
            template = (pos <= self.n_ctx) | (
                (pos >= eot - self.n_suffix) & (pos <= eot))
            rows = learned[self.lut[tokens].clamp(min=0)]
            embeds = torch.where(template.unsqueeze(-1), rows, embeds)
        return encode_text_embeds(self.tower, embeds, tokens)


class _ClipText(nn.Module):
    """open_clip's ``encode_text`` of a CLIP model, registered."""

    def __init__(self, clip: nn.Module) -> None:
        super().__init__()
        self.clip = clip

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.clip.encode_text(tokens)


class OpenVocabTextExportWrapper(nn.Module):
    """``forward(tokens) -> text_embeds``: the per-prompt embeddings an
    open-vocabulary classifier averages into its label embeddings, for
    export. :attr:`recipe` says how to turn them into label embeddings
    (:func:`label_embeds_from_names` follows it).

    Per model:

    - MKT (stage 1), UniCL, CPRFL with ``train_text_encoder=False``: CLIP's
      text features (the teacher's, or UniCL's own tower), L2-normalised per
      prompt; their average over the templates is normalised again
      (``CLIPTeacher.encode_labels``).
    - MKT with a prompt learner (stage 2): one prompt per name (its
      template), the learned vectors in place of the template's token
      embeddings, normalised if the learner normalises.
    - CPRFL (``train_text_encoder=True``): the raw features of the model's
      own trained text tower, averaged over the templates, not normalised.

    Args:
        model (nn.Module): An MKT, CPRFL or UniCL model.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        from mmovl.models.teachers.templates import resolve_templates
        kind = _kind(model)
        self.kind = kind
        prompt = None
        prompt_names: Dict[str, str] = {}
        if kind == 'MKT' and model.prompt_learner is not None:
            learner = model.prompt_learner
            self.encoder = _PromptLearnerText(learner, model.teacher.clip,
                                              model.teacher.tokenizer)
            templates = (learner.init_template, )
            self.normalize = bool(learner.normalize)
            normalize_mean = False  # one template: the prompt's embedding
            tokenizer = model.teacher.model_name
            prompt = dict(
                learn=learner.learn,
                context_ids=list(learner.context_ids),
                suffix_ids=list(learner.suffix_ids))
            if learner.learn == 'all_but_name':
                prompt['eot_id'] = self.encoder.eot_id
        elif kind == 'MKT':
            self.encoder = _ClipText(model.teacher.clip)
            templates = resolve_templates(model.templates)
            self.normalize = normalize_mean = True
            tokenizer = model.teacher.model_name
        elif kind == 'CPRFL':
            templates = model.templates
            prompt_names = dict(model.prompt_names)
            if model.text_encoder is not None:
                self.encoder = model.text_encoder
                self.normalize = normalize_mean = False
                tokenizer = None  # the teacher is gone; the caller says
            else:
                self.encoder = _ClipText(model.teacher.clip)
                self.normalize = normalize_mean = True
                tokenizer = model.teacher.model_name
        else:
            self.encoder = _ClipText(model.clip)
            templates = model.templates
            self.normalize = normalize_mean = True
            tokenizer = model.model_name
        self.recipe = dict(
            model=kind,
            templates=list(templates),
            prompt_names=prompt_names,
            normalize_mean=normalize_mean,
            tokenizer=tokenizer,
            prompt_learner=prompt)

    @property
    def context_length(self) -> int:
        """int: L, the token positions of a prompt."""
        enc = self.encoder
        emb = getattr(enc, 'positional_embedding', None)
        if emb is None:
            owner = getattr(enc, 'clip', None) or enc.tower
            emb = owner.positional_embedding
        return int(emb.shape[0])

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """(P, L) int64 token ids -> (P, D) float32 embeddings."""
        feats = self.encoder(tokens).float()
        return F.normalize(feats, dim=-1) if self.normalize else feats


@torch.no_grad()
def export_text_onnx(model: nn.Module,
                     out_file: str,
                     tokenizer_name: Optional[str] = None,
                     opset: int = DEFAULT_OPSET,
                     dynamo: bool = True) -> str:
    """Export the label (text) side of an open-vocabulary classifier.

    The graph: input ``tokens`` (P, L) int64 (open_clip's tokenizer output,
    L its context length), output ``text_embeds`` (P, D) float32, P
    dynamic; see :class:`OpenVocabTextExportWrapper`. The metadata holds the
    recipe that turns names into the image graph's ``label_embeds``
    (templates, name substitutions, normalisation of the average, the
    open_clip tokenizer's model name): :func:`label_embeds_from_names`.

    Args:
        model (nn.Module): An MKT, CPRFL or UniCL model.
        out_file (str): The ``.onnx`` file to write.
        tokenizer_name (str, optional): The open_clip model name whose
            tokenizer makes the tokens. Defaults to None: the model's (a
            CPRFL model that trains its text tower keeps none: pass the
            teacher's ``model_name`` of its config).
        opset (int): ONNX opset. Defaults to :data:`DEFAULT_OPSET`.
        dynamo (bool): As :func:`export_cls_onnx`. Defaults to True.

    Returns:
        str: ``out_file``.
    """
    model.eval()
    wrapper = OpenVocabTextExportWrapper(model).eval()
    recipe = dict(wrapper.recipe)
    if tokenizer_name is not None:
        recipe['tokenizer'] = tokenizer_name
    if recipe['tokenizer'] is None:
        raise ValueError('Which open_clip tokenizer makes the tokens? Pass '
                         "tokenizer_name (the config's teacher model_name).")
    import open_clip
    tokenizer = open_clip.get_tokenizer(recipe['tokenizer'])
    length = wrapper.context_length
    tokens = tokenizer(['a photo of a red circle.', 'a blue square'])
    if tokens.shape[1] != length:
        raise ValueError(
            f"{recipe['tokenizer']!r}'s tokenizer gives {tokens.shape[1]} "
            f'positions, the text tower takes {length}.')
    _export(
        wrapper, (tokens.long(), ),
        out_file,
        input_names=['tokens'],
        output_names=['text_embeds'],
        dynamic=dict(
            tokens={0: 'num_prompts'}, text_embeds={0: 'num_prompts'}),
        opset=opset,
        dynamo=dynamo)
    meta = {k: json.dumps(v) for k, v in recipe.items()}
    meta.update(
        graph='text',
        model=recipe['model'],
        tokenizer=recipe['tokenizer'],
        context_length=length,
        normalize_prompts=json.dumps(wrapper.normalize))
    _write_metadata(out_file, meta)
    return out_file


def _check_prompt_tokens(tokens: np.ndarray, prompts: List[str],
                         spec: dict) -> None:
    """Refuse prompts whose tokens do not hold the learned template where
    the text graph replaces them (e.g. cut off at the context length)."""
    ctx = np.asarray(spec['context_ids'], dtype=np.int64)
    suffix = np.asarray(spec['suffix_ids'], dtype=np.int64)
    n = len(ctx)
    bad = []
    for prompt, row in zip(prompts, tokens):
        ok = len(row) >= n + 2 and np.array_equal(row[1:n + 1], ctx)
        if ok and spec['learn'] == 'all_but_name':
            eot = int(np.argmax(row == spec['eot_id']))
            ok = eot >= n + 1 + len(suffix) and np.array_equal(
                row[eot - len(suffix):eot], suffix)
        if not ok:
            bad.append(prompt)
    if bad:
        raise ValueError(f'The prompts {bad[:5]} do not hold the learned '
                         "template's tokens around the name (too long for "
                         'the text context?).')


def label_embeds_from_names(text_model,
                            names: Sequence[str],
                            tokenizer=None,
                            batch_size: int = 1024) -> np.ndarray:
    """The image graph's ``label_embeds`` for label ``names``, through the
    text graph: what a deployment runs when its vocabulary changes.

    Follows the recipe in the text graph's metadata, as the model's own
    label encoder does: each name (after the recipe's substitutions) is put
    in every template, the prompts are tokenised with open_clip's tokenizer
    and run through the graph, the C x T embeddings are averaged over the
    T templates and, where the model does, L2-normalised.

    Args:
        text_model (str | onnxruntime.InferenceSession): The text graph.
        names (Sequence[str]): The C label names.
        tokenizer (Callable, optional): Turns a list of prompts into (P, L)
            token ids. Defaults to None: ``open_clip.get_tokenizer`` of the
            recipe's model name.
        batch_size (int): Prompts per run of the graph. Defaults to 1024.

    Returns:
        np.ndarray: (C, D) float32.

    Examples:
        >>> embeds = label_embeds_from_names(  # doctest: +SKIP
        ...     'mkt_text.onnx', ['red circle', 'blue square'])
    """
    if isinstance(names, str) or not len(names):
        raise ValueError('names must be a non-empty sequence of strings.')
    if isinstance(text_model, (str, os.PathLike)):
        import onnxruntime as ort
        text_model = ort.InferenceSession(
            str(text_model), providers=['CPUExecutionProvider'])
    meta = read_onnx_metadata(text_model)
    if meta.get('graph') != 'text':
        raise ValueError('Not an mmovl text graph (export_text_onnx): its '
                         f"metadata says graph={meta.get('graph')!r}.")
    templates = json.loads(meta['templates'])
    substitutions = json.loads(meta['prompt_names'])
    if tokenizer is None:
        import open_clip
        tokenizer = open_clip.get_tokenizer(meta['tokenizer'])
    prompts = [
        t.format(substitutions.get(n, n)) for n in names for t in templates
    ]
    tokens = np.asarray(tokenizer(prompts), dtype=np.int64)
    spec = json.loads(meta['prompt_learner'])
    if spec is not None:
        _check_prompt_tokens(tokens, prompts, spec)
    feats = np.concatenate([
        text_model.run(['text_embeds'],
                       {'tokens': tokens[i:i + batch_size]})[0]
        for i in range(0, len(tokens), batch_size)
    ])
    feats = feats.reshape(len(names), len(templates), -1).mean(axis=1)
    if json.loads(meta['normalize_mean']):
        feats = feats / np.maximum(
            np.linalg.norm(feats, axis=-1, keepdims=True), 1e-12)
    return feats.astype(np.float32)
