# Copyright (c) mmovl contributors. All rights reserved.
"""Convert the MKT authors' released checkpoints into mmovl's MKT.

    python tools/model_converters/mkt_to_mmovl.py \\
        first_stage.pth work_dirs/mkt/released.pth \\
        --label-emb NUS-WIDE/label_emb.pt \\
        --label-names NUS-WIDE/Concepts925.txt NUS-WIDE/Concepts81.txt
    python tools/test.py configs/mkt/vit-b16_nuswide.py \\
        work_dirs/mkt/released.pth \\
        --cfg-options model.teacher.cache_dir=work_dirs/mkt/label_embeds

The source is the ``state_dict()`` of the authors' ``CLIPVIT``
(github sunanhe/MKT, ``models/clip_vit.py``): CLIP's image tower under its
own names (``conv1``, ``class_embedding``, ``positional_embedding``,
``ln_pre``, ``transformer.resblocks.*``, ``ln_post``), the trained visual
projection ``projection_dist`` (W, D) that both streams and the distillation
use, and an MLP ``projection.fc1/fc2`` that their forward never calls
(dropped). It becomes ``backbone.visual.*`` and ``head.proj.weight``
(``projection_dist`` transposed), checked by a strict load into the
config's backbone and head. ``backbone.visual.proj`` also gets
``projection_dist``: mmovl keeps CLIP's projection there only to start the
head from, so it does not change any score.

Their stage-1 scores use the label embeddings of ``label_emb.pt`` (raw,
unnormalised CLIP ViT-B/16 text features of "There is a {} in the scene",
one row per name of ``Concepts925.txt`` then ``Concepts81.txt``). With
``--label-emb`` and ``--label-names`` those rows are written into a
label-embedding cache of the config's teacher (a separate folder,
``--cache-dir``, never the config's own cache: the entries stand where CLIP's
own embeddings would), one entry per vocabulary in the order the model will
be given it: each names file, their concatenation, and the ``classes`` /
``seen_classes`` / ``unseen_classes`` of the config's data sets (read from
the data, which must be in place). Point the teacher at that folder with
``--cfg-options model.teacher.cache_dir=...``; the test log then says
"CLIPTeacher: loaded ... label embeddings from <that folder>" for every
vocabulary ("cached ... in" means CLIP encoded one the converter did not
write: another order or other names).

Stage 2 (their ``PromptLearner``, ``--prompt-ckpt``, with a stage-2
config): their code trains CLIP's token-embedding table, and a prompt
"There is a {} in the scene" reads the trained rows of its non-name tokens
(start and end tokens included) and the original rows of the name's tokens.
That is mmovl's ``MKTPromptLearner(learn='all_but_name')``, whose
``token_vectors`` are the trained rows of its ``learned_ids``. The rest of
their text tower is frozen CLIP: it is compared with the config's teacher,
which mmovl encodes with. The image side comes from the stage-1 SRC, as
their stage-2 evaluation loads it.

    python tools/model_converters/mkt_to_mmovl.py \\
        first_stage.pth work_dirs/mkt/released_prompt.pth \\
        --prompt-ckpt second_stage.pth \\
        --config configs/mkt/mkt_vit_b16_prompt_nuswide.py

Files are read with ``torch.load(weights_only=True)``: nothing in them is
executed.
"""
import argparse
import os.path as osp
import pickle
import re
import sys
import zipfile
from collections import OrderedDict
from copy import deepcopy
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmengine.config import Config, DictAction
from mmpretrain.registry import DATASETS, MODELS

import mmovl  # noqa: F401  (registers mmovl's models and data sets)
from mmovl.embeds.label_cache import sha256_file
from mmovl.utils import (atomic_write, check_state_dict_fits,
                         state_dict_mismatches)
from mmovl.utils.vocabulary import check_unique_names

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEFAULT_CONFIG = osp.join('configs', 'mkt', 'vit-b16_nuswide.py')
DEFAULT_PROMPT_CONFIG = osp.join('configs', 'mkt',
                                 'mkt_vit_b16_prompt_nuswide.py')
# Their stage-2 prompt (models/prompt_model.py).
THEIR_TEMPLATE = 'There is a {} in the scene'

# One transformer block of CLIP's ViT, in their (OpenAI CLIP's) names, with
# the shape of each tensor for a width W.
_BLOCK_SHAPES = {
    'ln_1.weight': lambda w: (w, ),
    'ln_1.bias': lambda w: (w, ),
    'attn.in_proj_weight': lambda w: (3 * w, w),
    'attn.in_proj_bias': lambda w: (3 * w, ),
    'attn.out_proj.weight': lambda w: (w, w),
    'attn.out_proj.bias': lambda w: (w, ),
    'ln_2.weight': lambda w: (w, ),
    'ln_2.bias': lambda w: (w, ),
    'mlp.c_fc.weight': lambda w: (4 * w, w),
    'mlp.c_fc.bias': lambda w: (4 * w, ),
    'mlp.c_proj.weight': lambda w: (w, 4 * w),
    'mlp.c_proj.bias': lambda w: (w, ),
}
# CLIPVIT's unused MLP head (their forward projects with projection_dist).
_UNUSED_PREFIX = 'projection.'
_STAGE2_KEYS = ('token_embedding.weight', 'text_projection', 'ln_final.weight')
_WRAPPERS = ('state_dict', 'model', 'module')

RESAVE_SNIPPET = '''\
import torch
sd = torch.load({src!r}, map_location='cpu', weights_only=False)
sd = sd.state_dict() if hasattr(sd, 'state_dict') else sd.get('model', sd)
torch.save({{k: v for k, v in sd.items() if torch.is_tensor(v)}}, {dst!r})'''


class ConversionError(ValueError):
    """The input is not what the converter takes; the message says why."""


def _head(keys: Sequence[str], n: int = 8) -> str:
    keys = list(keys)
    more = f' and {len(keys) - n} more' if len(keys) > n else ''
    return ', '.join(keys[:n]) + more


def load_weights_only(path: str, what: str) -> object:
    """``torch.load(path, weights_only=True)``; a refusal says what to do."""
    if not osp.isfile(path):
        raise ConversionError(f'{what} not found: {path}')
    with open(path, 'rb') as f:
        start = f.read(2)
    # torch.save writes a zip archive (or, before torch 1.6, a pickle)
    if not (zipfile.is_zipfile(path) or start[:1] == b'\x80'):
        raise ConversionError(
            f'{what} {path} is not a readable torch file (neither torch\'s '
            'zip format nor a pickle).')
    try:
        return torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as e:
        reason = re.search(r'WeightsUnpickler error:\s*([^\n]*)', str(e))
        reason = reason.group(1) if reason else str(e).splitlines()[0]
        dst = osp.splitext(path)[0] + '.state_dict.pth'
        raise ConversionError(
            f'{what} {path} was refused by torch.load(weights_only=True) '
            f'({reason}): it is not a plain torch file of tensors (it may '
            'hold pickled Python objects, which could run code when '
            'loaded). If you trust it, re-save only its tensors in a '
            'trusted, isolated environment (with the authors\' code on '
            'PYTHONPATH if it pickles their classes):\n\n' +
            RESAVE_SNIPPET.format(src=path, dst=dst) +
            f'\n\nand convert {dst} instead.') from e
    except Exception as e:  # torch raises many types for a non-torch file
        raise ConversionError(
            f'{what} {path} is not a readable torch file '
            f'({type(e).__name__}: {e})') from e


def read_mkt_checkpoint(path: str) -> Dict[str, torch.Tensor]:
    """The state dict of one of the authors' checkpoints: raw (as their
    scripts save it) or under ``state_dict`` / ``model`` / ``module``, with
    DataParallel's ``module.`` prefix removed."""
    ckpt = load_weights_only(path, 'MKT checkpoint')
    if isinstance(ckpt, dict) and not all(
            isinstance(v, torch.Tensor) for v in ckpt.values()):
        for wrapper in _WRAPPERS:
            if isinstance(ckpt.get(wrapper), dict):
                ckpt = ckpt[wrapper]
                break
    if not (isinstance(ckpt, dict) and ckpt and all(
            isinstance(k, str) and isinstance(v, torch.Tensor)
            for k, v in ckpt.items())):
        kind = type(ckpt).__name__
        keys = f' with keys {_head(map(str, ckpt))}' \
            if isinstance(ckpt, dict) else ''
        raise ConversionError(
            f'{path} is not an MKT checkpoint: expected a state dict of '
            f"tensors (raw, or under {'/'.join(_WRAPPERS)}), got a {kind}"
            f'{keys}.')
    if all(k.startswith('module.') for k in ckpt):
        ckpt = {k[len('module.'):]: v for k, v in ckpt.items()}
    return dict(ckpt)


def checkpoint_stage(state: Dict[str, torch.Tensor], path: str) -> int:
    """1 for the authors' ``CLIPVIT`` (image side), 2 for their
    ``PromptLearner`` (text side)."""
    if 'projection_dist' in state or 'conv1.weight' in state:
        return 1
    if any(k in state for k in _STAGE2_KEYS):
        return 2
    raise ConversionError(
        f'{path} is not an MKT checkpoint: it has neither the stage-1 '
        "image-encoder keys ('conv1.weight', 'projection_dist', ...) nor the "
        "stage-2 prompt keys ('token_embedding.weight', ...); its keys: "
        f'{_head(sorted(state))}.')


def stage1_shapes(width: int, layers: int, patch_size: int, grid: int,
                  embed_dim: int) -> Dict[str, Tuple[int, ...]]:
    """Every tensor of the authors' stage-1 checkpoint that their forward
    uses, with its shape (``projection.*`` is not among them)."""
    shapes = {
        'class_embedding': (width, ),
        'positional_embedding': (grid * grid + 1, width),
        'conv1.weight': (width, 3, patch_size, patch_size),
        'ln_pre.weight': (width, ),
        'ln_pre.bias': (width, ),
    }
    for i in range(layers):
        for name, shape in _BLOCK_SHAPES.items():
            shapes[f'transformer.resblocks.{i}.{name}'] = shape(width)
    shapes.update({
        'ln_post.weight': (width, ),
        'ln_post.bias': (width, ),
        'projection_dist': (width, embed_dim),
    })
    return shapes


def check_stage1(state: Dict[str, torch.Tensor], path: str) -> dict:
    """Check a stage-1 state dict key by key and shape by shape; return its
    architecture (``width``, ``layers``, ``patch_size``, ``grid``,
    ``embed_dim``)."""
    problems = []
    for key in ('conv1.weight', 'positional_embedding', 'projection_dist'):
        if key not in state:
            problems.append(f'missing {key}')
    if problems:
        raise ConversionError(f'{path} is not a stage-1 MKT checkpoint: ' +
                              '; '.join(problems) + '.')
    conv, pos = state['conv1.weight'], state['positional_embedding']
    if conv.ndim != 4 or conv.shape[1] != 3 or conv.shape[2] != conv.shape[3]:
        raise ConversionError(
            f'{path}: conv1.weight has shape {tuple(conv.shape)}, expected '
            '(W, 3, P, P).')
    grid = int(round((pos.shape[0] - 1)**0.5)) if pos.ndim == 2 else 0
    blocks = {
        int(m.group(1))
        for m in (re.match(r'transformer\.resblocks\.(\d+)\.', k)
                  for k in state) if m
    }
    arch = dict(
        width=conv.shape[0],
        layers=max(blocks) + 1 if blocks else 0,
        patch_size=conv.shape[2],
        grid=grid,
        embed_dim=state['projection_dist'].shape[-1])
    expected = stage1_shapes(**arch)
    problems = state_dict_mismatches(
        expected, state, ignore=(_UNUSED_PREFIX, ))
    not_float = sorted(k for k in expected
                       if k in state and not state[k].is_floating_point())
    if not_float:
        problems.append(f'not floating point: {_head(not_float)}')
    if problems:
        raise ConversionError(
            f'{path} is not a stage-1 MKT checkpoint of a ViT with width '
            f"{arch['width']}, {arch['layers']} blocks, patch "
            f"{arch['patch_size']} and a {grid}x{grid} grid: " +
            '; '.join(problems) + '.')
    return arch


def convert_stage1(
    state: Dict[str, torch.Tensor]
) -> Tuple['OrderedDict[str, torch.Tensor]', List[str]]:
    """mmovl's MKT state dict (float32) from a checked stage-1 state dict,
    and the keys left out (their unused ``projection.*`` MLP)."""
    out = OrderedDict()
    for key, value in state.items():
        if key.startswith(_UNUSED_PREFIX):
            continue
        name = 'proj' if key == 'projection_dist' else key
        out[f'backbone.visual.{name}'] = value.float().contiguous()
    out['head.proj.weight'] = state['projection_dist'].float().t(
    ).contiguous()
    dropped = sorted(k for k in state if k.startswith(_UNUSED_PREFIX))
    return out, dropped


def load_config(path: str, cfg_options: Optional[dict] = None):
    if not osp.isfile(path) and osp.isfile(osp.join(REPO, path)):
        path = osp.join(REPO, path)
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    model = cfg.get('model')
    if model is None or 'backbone' not in model or 'head' not in model:
        raise ConversionError(f'{path} is not an MKT config (no model with '
                              'a backbone and a head).')
    return cfg


class _Student(nn.Module):
    """The backbone, head and prompt learner (if any) of an MKT config: what
    the state dict of mmovl's ``MKT`` holds (its teacher is not a
    registered module)."""

    def __init__(self, model_cfg, teacher: Optional[nn.Module] = None):
        super().__init__()
        backbone = deepcopy(dict(model_cfg['backbone']))
        backbone['checkpoint'] = None  # the shapes only: random weights
        self.backbone = MODELS.build(backbone)
        head = deepcopy(dict(model_cfg['head']))
        proj = self.backbone.proj
        head.setdefault('in_channels', proj.shape[0])
        head.setdefault('out_channels', proj.shape[1])
        self.head = MODELS.build(head)
        if model_cfg.get('prompt_learner') is not None:
            self.prompt_learner = MODELS.build(
                deepcopy(dict(model_cfg['prompt_learner'])),
                default_args=dict(
                    clip_model=teacher.clip, tokenizer=teacher.tokenizer))


def build_student(model_cfg,
                  teacher: Optional[nn.Module] = None) -> nn.Module:
    """The config's backbone and head, randomly initialised, as
    ``.backbone`` and ``.head``, and its prompt learner (``.prompt_learner``,
    which needs the ``teacher``) if it has one."""
    return _Student(model_cfg, teacher)


def build_teacher(model_cfg) -> nn.Module:
    """The config's teacher, without a disk cache."""
    teacher = deepcopy(dict(model_cfg['teacher']))
    teacher['cache_dir'] = None
    return MODELS.build(teacher)


def check_prompt_config(model_cfg) -> List[str]:
    """Refuse a prompt learner that cannot hold their stage 2; return
    warnings about settings that make the scores differ."""
    cfg = dict(model_cfg['prompt_learner'])
    learn = cfg.get('learn', 'context')
    template = cfg.get('init_template', 'a photo of a {}.')
    if learn != 'all_but_name' or template != THEIR_TEMPLATE:
        raise ConversionError(
            'Their stage 2 trains the token embeddings of every non-name '
            f'token of {THEIR_TEMPLATE!r}; the config\'s prompt learner '
            f'learns {learn!r} of {template!r}. Add --cfg-options '
            'model.prompt_learner.learn=all_but_name '
            f'"model.prompt_learner.init_template={THEIR_TEMPLATE}" '
            'model.prompt_learner.normalize=False')
    if cfg.get('normalize', True):
        return ['prompt_learner.normalize=True (the authors score with raw '
                'text features)']
    return []


def check_stage2(state: Dict[str, torch.Tensor], clip: nn.Module,
                 path: str) -> float:
    """Check their stage-2 state dict against the teacher's CLIP text
    tower, key by key and shape by shape; return the largest difference
    between their (frozen) tower and the teacher's, token table aside."""
    expected = {
        k: v
        for k, v in clip.state_dict().items()
        if not k.startswith('visual.') and k not in ('logit_scale',
                                                     'attn_mask')
    }
    check_state_dict_fits(
        expected, state,
        f'{path} is not a stage-2 MKT checkpoint of the config\'s '
        'teacher\'s text tower',
        error=ConversionError)
    return max((state[k].float() - v.float().cpu()).abs().max().item()
               for k, v in expected.items() if k != 'token_embedding.weight')


def check_fits(student: nn.Module, state: Dict[str, torch.Tensor],
               path: str) -> List[str]:
    """Load ``state`` strictly into ``student``; return warnings about what
    would make its scores differ from the authors' model."""
    check_state_dict_fits(
        student, state,
        f'The weights of {path} do not fit the config\'s backbone and head',
        error=ConversionError)
    student.load_state_dict(state, strict=True)
    warnings = []
    gelu = student.backbone.visual.transformer.resblocks[0].mlp.gelu
    if type(gelu).__name__ != 'QuickGELU':
        warnings.append(
            f'the config\'s architecture uses {type(gelu).__name__}, the '
            'authors\' CLIP ViT QuickGELU (e.g. ViT-B-16-quickgelu)')
    head = student.head
    faithful = dict(
        streams='both', combine='normalized_mean', normalize_embeds=False)
    for name, value in faithful.items():
        if getattr(head, name, value) != value:
            warnings.append(f'head.{name}={getattr(head, name)!r} (the '
                            f"authors' model: {value!r})")
    return warnings


# -- label embeddings -------------------------------------------------------
def read_names(paths: Sequence[str]) -> List[List[str]]:
    """One list of stripped names per file (trailing blank lines ignored),
    as their code reads ``Concepts925.txt`` / ``Concepts81.txt``."""
    groups = []
    for path in paths:
        if not osp.isfile(path):
            raise ConversionError(f'Label names file not found: {path}')
        with open(path, encoding='utf-8') as f:
            names = [line.strip() for line in f]
        while names and not names[-1]:
            names.pop()
        if not names or '' in names:
            raise ConversionError(
                f'{path}: expected one label name a line, found an empty '
                f'line at {names.index("") + 1 if "" in names else 1}.')
        groups.append(names)
    try:
        check_unique_names([n for g in groups for n in g], 'label names',
                           f'{list(paths)}, read as one list')
    except ValueError as e:
        raise ConversionError(f'{e}.') from None
    return groups


def read_label_emb(path: str, num_names: int, names_from: Sequence[str],
                   embed_dim: int) -> torch.Tensor:
    emb = load_weights_only(path, 'Label embedding file')
    if isinstance(emb, dict) and len(emb) == 1:
        emb = next(iter(emb.values()))
    if not isinstance(emb, torch.Tensor) or emb.ndim != 2 or \
            not emb.is_floating_point():
        shape = tuple(getattr(emb, 'shape', ()))
        raise ConversionError(
            f'{path} is not a label embedding file: expected a 2-D float '
            f'tensor (one row per label name), got {type(emb).__name__} '
            f'{shape}.')
    if emb.shape[0] != num_names:
        raise ConversionError(
            f'{path} has {emb.shape[0]} rows but {list(names_from)} name '
            f'{num_names} labels; give the names files in the order of the '
            'rows (MKT: Concepts925.txt, then Concepts81.txt).')
    if emb.shape[1] != embed_dim:
        raise ConversionError(
            f'{path} holds {emb.shape[1]}-d embeddings; the checkpoint '
            f'projects to {embed_dim} dimensions.')
    if not torch.isfinite(emb).all():
        raise ConversionError(f'{path} holds non-finite values.')
    return emb.float()


def dataset_vocabularies(cfg) -> Tuple[List[List[str]], List[str]]:
    """The vocabularies the config's data sets declare (``classes``,
    ``seen_classes``, ``unseen_classes``: what ``VocabularyHook`` gives the
    model), and why a data set could not be read."""
    vocabs, problems, built = [], [], []
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        dataset = (cfg.get(loader) or {}).get('dataset')
        if dataset is None or dataset in built:
            continue
        built.append(dataset)
        dataset = deepcopy(dict(dataset))
        dataset['pipeline'] = []  # the names only
        try:
            meta = DATASETS.build(dataset).metainfo
        except Exception as e:  # any reason: the data set is not usable
            problems.append(f'{loader}: {type(e).__name__}: {e}')
            continue
        for key in ('classes', 'seen_classes', 'unseen_classes'):
            if meta.get(key):
                vocabs.append([str(n) for n in meta[key]])
    return vocabs, problems


def vocabularies(groups: List[List[str]],
                 data_vocabs: List[List[str]]) -> List[List[str]]:
    """Each names file, their concatenation and the data sets'
    vocabularies, without repeats; every name must have a row."""
    vocabs = list(groups)
    if len(groups) > 1:
        vocabs.append([n for g in groups for n in g])
    known = {n for g in groups for n in g}
    unknown = sorted({n for v in data_vocabs for n in v} - known)
    if unknown:
        raise ConversionError(
            f'{len(unknown)} label names of the config\'s data sets are not '
            f'in the names files: {_head(unknown)}.')
    out = []
    for vocab in vocabs + list(data_vocabs):
        if vocab not in out:
            out.append(vocab)
    return out


def write_label_cache(cfg, cache_dir: str, emb: torch.Tensor,
                      names: List[str], vocabs: List[List[str]],
                      source: str, normalize: bool = False) -> List[str]:
    """Store the rows of ``emb`` (row ``i`` is ``names[i]``) in the label
    cache of the config's teacher, in ``cache_dir``, for each vocabulary."""
    model = cfg.model
    if model.get('prompt_learner') is not None:
        raise ConversionError(
            'The config has a prompt learner (stage 2): its label embeddings '
            'come from the prompts, not from label_emb.pt; use the stage-1 '
            'config (e.g. configs/mkt/vit-b16_nuswide.py).')
    teacher_cfg = deepcopy(dict(model.teacher))
    own = teacher_cfg.get('cache_dir')
    if own and osp.realpath(own) == osp.realpath(cache_dir):
        raise ConversionError(
            f'--cache-dir {cache_dir} is the config\'s own label-embedding '
            'cache: the authors\' embeddings would stand in for CLIP\'s in '
            'every run that uses it. Choose another folder.')
    teacher_cfg['cache_dir'] = cache_dir
    teacher = MODELS.build(teacher_cfg)
    if emb.shape[1] != teacher.embed_dim:
        raise ConversionError(
            f'The label embeddings are {emb.shape[1]}-d, the config\'s '
            f'teacher embeds in {teacher.embed_dim}.')
    if normalize:
        emb = torch.nn.functional.normalize(emb, dim=-1)
    row = {n: i for i, n in enumerate(names)}
    metadata = dict(
        source=osp.abspath(source),
        source_sha256=sha256_file(source),
        note=('MKT label embeddings (tools/model_converters/mkt_to_mmovl.py)'
              + (', L2-normalised' if normalize else ', as released')))
    return [
        teacher.store_label_embeds(
            vocab,
            emb[[row[n] for n in vocab]],
            templates=model.get('templates'),
            metadata=metadata) for vocab in vocabs
    ]


# -- the whole conversion ------------------------------------------------
def convert(src: str,
            dst: str,
            config: Optional[str] = None,
            cfg_options: Optional[dict] = None,
            label_emb: Optional[str] = None,
            label_names: Optional[Sequence[str]] = None,
            cache_dir: Optional[str] = None,
            normalize_label_emb: bool = False,
            prompt_ckpt: Optional[str] = None) -> dict:
    """Convert ``src`` (and ``prompt_ckpt``) into the mmovl checkpoint
    ``dst`` (and the label cache); return a summary (``warnings``,
    ``cache_dir``, ``cache_files``, ``dropped``, ``tower_max_diff``)."""
    if (label_emb is None) != (label_names is None):
        raise ConversionError('--label-emb and --label-names go together: '
                              'the names say which label each row is.')
    if prompt_ckpt is not None and label_emb is not None:
        raise ConversionError(
            'Stage 2 scores with the prompts\' text features, not with '
            'label_emb.pt: give --prompt-ckpt or --label-emb, not both.')
    for path in (src, prompt_ckpt):
        if path is not None and osp.abspath(path) == osp.abspath(dst):
            raise ConversionError(
                f'The output would overwrite the source {path}.')
    if config is None:
        config = DEFAULT_CONFIG if prompt_ckpt is None else \
            DEFAULT_PROMPT_CONFIG
    state = read_mkt_checkpoint(src)
    if checkpoint_stage(state, src) == 2:
        raise ConversionError(
            f'{src} is a stage-2 (prompt learner) checkpoint of MKT\'s code: '
            'give the stage-1 checkpoint as the source (the image encoder, '
            'as their stage-2 evaluation loads it) and this one with '
            '--prompt-ckpt.')
    arch = check_stage1(state, src)
    converted, dropped = convert_stage1(state)
    cfg = load_config(config, cfg_options)
    has_prompt = cfg.model.get('prompt_learner') is not None
    if has_prompt and prompt_ckpt is None:
        raise ConversionError(
            f'{config} has a prompt learner (stage 2): give their stage-2 '
            'checkpoint with --prompt-ckpt, or use a stage-1 config.')
    if prompt_ckpt is not None and not has_prompt:
        raise ConversionError(
            f'--prompt-ckpt needs a stage-2 config with a prompt learner '
            f'(e.g. {DEFAULT_PROMPT_CONFIG}); {config} has none.')
    warnings, teacher, tower_diff = [], None, None
    if prompt_ckpt is not None:
        warnings += check_prompt_config(cfg.model)
        prompt_state = read_mkt_checkpoint(prompt_ckpt)
        if checkpoint_stage(prompt_state, prompt_ckpt) != 2:
            raise ConversionError(
                f'--prompt-ckpt {prompt_ckpt} is not a stage-2 (prompt '
                'learner) checkpoint: it holds an image encoder.')
        teacher = build_teacher(cfg.model)
        tower_diff = check_stage2(prompt_state, teacher.clip, prompt_ckpt)
        if tower_diff > 1e-3:
            warnings.append(
                f'the text tower of {prompt_ckpt} differs from the '
                f'teacher\'s by up to {tower_diff:.3g} (mmovl encodes with '
                'the teacher\'s)')
    student = build_student(cfg.model, teacher)
    if prompt_ckpt is not None:
        ids = list(student.prompt_learner.learned_ids)
        converted['prompt_learner.token_vectors'] = prompt_state[
            'token_embedding.weight'][ids].float().contiguous()
    warnings += check_fits(student, converted, src)

    summary = dict(warnings=warnings, dropped=dropped, cache_dir=None,
                   cache_files=[], tower_max_diff=tower_diff)
    meta = dict(
        converter='tools/model_converters/mkt_to_mmovl.py',
        source=osp.abspath(src),
        source_sha256=sha256_file(src),
        source_format='MKT (github sunanhe/MKT) stage-1 CLIPVIT state dict',
        arch=arch,
        dropped_keys=dropped,
        note=("backbone.visual.proj and head.proj.weight both hold the "
              "trained projection_dist"))
    if prompt_ckpt is not None:
        meta.update(
            prompt_source=osp.abspath(prompt_ckpt),
            prompt_source_sha256=sha256_file(prompt_ckpt),
            prompt_learned_ids=ids,
            text_tower_max_diff=tower_diff)
    if label_emb is not None:
        groups = read_names(label_names)
        names = [n for g in groups for n in g]
        emb = read_label_emb(label_emb, len(names), label_names,
                             arch['embed_dim'])
        data_vocabs, problems = dataset_vocabularies(cfg)
        for problem in problems:
            warnings.append(
                f'could not read the vocabulary of {problem}; only the '
                'names files\' orders are cached, and a vocabulary in '
                'another order is encoded by CLIP instead')
        vocabs = vocabularies(groups, data_vocabs)
        if cache_dir is None:
            cache_dir = osp.join(osp.dirname(osp.abspath(dst)),
                                 'label_embeds')
        files = write_label_cache(cfg, cache_dir, emb, names, vocabs,
                                  label_emb, normalize_label_emb)
        summary.update(cache_dir=cache_dir, cache_files=files,
                       vocab_sizes=[len(v) for v in vocabs])
        meta.update(label_emb=osp.abspath(label_emb),
                    label_emb_sha256=sha256_file(label_emb),
                    label_cache_dir=osp.abspath(cache_dir))
    ckpt = dict(meta=meta, state_dict=converted)
    atomic_write(dst, lambda tmp: torch.save(ckpt, tmp))
    return summary


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n')[0],
        epilog='See the module docstring for the details.')
    parser.add_argument('src', help='the authors\' stage-1 checkpoint')
    parser.add_argument('dst', help='the mmovl checkpoint to write')
    parser.add_argument(
        '--prompt-ckpt',
        help='their stage-2 (prompt learner) checkpoint, for a stage-2 '
        'config')
    parser.add_argument(
        '--config',
        help=f'the MKT config the weights must fit (default: '
        f'{DEFAULT_CONFIG}, with --prompt-ckpt {DEFAULT_PROMPT_CONFIG})')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='overrides of the config, as for tools/test.py')
    parser.add_argument('--label-emb', help='their label_emb.pt')
    parser.add_argument(
        '--label-names', nargs='+',
        help='names files in the order of the label_emb rows '
        '(Concepts925.txt Concepts81.txt)')
    parser.add_argument(
        '--cache-dir',
        help='folder of the label-embedding cache to write (default: '
        'label_embeds beside DST)')
    parser.add_argument(
        '--normalize-label-emb', action='store_true',
        help='L2-normalise the rows (their code scores with them as they '
        'are)')
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    try:
        summary = convert(
            args.src, args.dst, config=args.config,
            cfg_options=args.cfg_options, label_emb=args.label_emb,
            label_names=args.label_names,
            cache_dir=args.cache_dir,
            normalize_label_emb=args.normalize_label_emb,
            prompt_ckpt=args.prompt_ckpt)
    except ConversionError as e:
        sys.exit(f'mkt_to_mmovl: {e}')
    print(f'wrote {args.dst}')
    if summary['dropped']:
        print(f"left out (unused by their forward): "
              f"{', '.join(summary['dropped'])}")
    if summary['tower_max_diff'] is not None:
        print(f"text tower of the stage-2 checkpoint vs the teacher's: max "
              f"|diff| {summary['tower_max_diff']:.3g}")
    for warning in summary['warnings']:
        print(f'warning: scores will differ from the authors\' model: '
              f'{warning}')
    if summary['cache_dir']:
        print(f"label embeddings of {len(summary['cache_files'])} "
              f"vocabularies (sizes {summary['vocab_sizes']}) in "
              f"{summary['cache_dir']}")
        print('evaluate with:\n  python tools/test.py '
              f'{args.config or DEFAULT_CONFIG} {args.dst} --cfg-options '
              f"model.teacher.cache_dir={summary['cache_dir']}" +
              (' (and the --cfg-options given here)'
               if args.cfg_options else ''))


if __name__ == '__main__':
    main()
