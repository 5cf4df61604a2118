# Copyright (c) mmovl contributors. All rights reserved.
"""The category prompts of ViLD's authors, and LVIS names and synonyms.

LVIS names are WordNet-style (``'bat_(animal)'``, ``'Band_Aid'``): 412 of
the 1,203 v1 names contain ``_`` and 108 a parenthesis. The authors' code
(``ViLD_demo.ipynb`` of tensorflow/tpu ``models/official/detection/projects/
vild``, which builds the text embeddings of the released models' kind; the
same prompt set ships in mmpretrain as ``models/multimodal/ram/
openset_utils.py``) does not feed them raw: each name is processed
(:func:`vild_processed_name`), put in 63 templates with an article
(:data:`VILD_TEMPLATES`), and ``'This is '`` is put in front of every
sentence that starts with ``'a'`` or ``'the'``; the normalised CLIP
embeddings of a name's sentences are averaged and normalised again.

The authors' released classifier (``clip_synonym_prompt.npy``) also uses
LVIS's synonyms; the code that made it is not released. With synonyms
mmovl embeds each synonym as above and averages the normalised synonym
embeddings (:func:`encode_vild_names`). Nothing here needs mmdet.
"""
import json
import os.path as osp
from typing import Dict, List, Mapping, Sequence, Tuple, Union

import torch
import torch.nn.functional as F

__all__ = [
    'VILD_TEMPLATES', 'vild_article', 'vild_processed_name', 'vild_prompts',
    'vild_templates_for', 'read_synonyms', 'encode_vild_names'
]

# The authors' 63 templates ("multiple_templates" of the ViLD demo); {} is
# the processed name, {article} 'a' or 'an'.
VILD_TEMPLATES: Tuple[str, ...] = (
    'There is {article} {} in the scene.',
    'There is the {} in the scene.',
    'a photo of {article} {} in the scene.',
    'a photo of the {} in the scene.',
    'a photo of one {} in the scene.',
    'itap of {article} {}.',
    'itap of my {}.',
    'itap of the {}.',
    'a photo of {article} {}.',
    'a photo of my {}.',
    'a photo of the {}.',
    'a photo of one {}.',
    'a photo of many {}.',
    'a good photo of {article} {}.',
    'a good photo of the {}.',
    'a bad photo of {article} {}.',
    'a bad photo of the {}.',
    'a photo of a nice {}.',
    'a photo of the nice {}.',
    'a photo of a cool {}.',
    'a photo of the cool {}.',
    'a photo of a weird {}.',
    'a photo of the weird {}.',
    'a photo of a small {}.',
    'a photo of the small {}.',
    'a photo of a large {}.',
    'a photo of the large {}.',
    'a photo of a clean {}.',
    'a photo of the clean {}.',
    'a photo of a dirty {}.',
    'a photo of the dirty {}.',
    'a bright photo of {article} {}.',
    'a bright photo of the {}.',
    'a dark photo of {article} {}.',
    'a dark photo of the {}.',
    'a photo of a hard to see {}.',
    'a photo of the hard to see {}.',
    'a low resolution photo of {article} {}.',
    'a low resolution photo of the {}.',
    'a cropped photo of {article} {}.',
    'a cropped photo of the {}.',
    'a close-up photo of {article} {}.',
    'a close-up photo of the {}.',
    'a jpeg corrupted photo of {article} {}.',
    'a jpeg corrupted photo of the {}.',
    'a blurry photo of {article} {}.',
    'a blurry photo of the {}.',
    'a pixelated photo of {article} {}.',
    'a pixelated photo of the {}.',
    'a black and white photo of the {}.',
    'a black and white photo of {article} {}.',
    'a plastic {}.',
    'the plastic {}.',
    'a toy {}.',
    'the toy {}.',
    'a plushie {}.',
    'the plushie {}.',
    'a cartoon {}.',
    'the cartoon {}.',
    'an embroidered {}.',
    'the embroidered {}.',
    'a painting of the {}.',
    'a painting of a {}.',
)


def vild_processed_name(name: str) -> str:
    """A category name as the authors prompt it: ``_`` to a space, ``/`` to
    ``' or '`` (Objects365), lower case, trailing dots removed;
    parentheses stay.

    Args:
        name (str): A raw category name.

    Returns:
        str: The name as it goes into a prompt.

    Examples:
        >>> vild_processed_name('bat_(animal)')
        'bat (animal)'
        >>> vild_processed_name('Band_Aid')
        'band aid'
    """
    return name.replace('_', ' ').replace('/', ' or ').lower().rstrip('.')


def vild_article(name: str) -> str:
    """``'an'`` if the raw name starts with a lower-case vowel, else
    ``'a'`` (the authors' rule, applied to the raw name).

    Examples:
        >>> vild_article('apple'), vild_article('Band_Aid')
        ('an', 'a')
    """
    return 'an' if name[:1] in tuple('aeiou') else 'a'


def _this_is(text: str) -> str:
    return 'This is ' + text if text.startswith(('a', 'the')) else text


def vild_templates_for(article: str) -> Tuple[str, ...]:
    """The authors' templates with the article filled in and ``'This is '``
    in front where they put it: single-``{}`` templates for the names that
    take ``article``.

    Examples:
        >>> vild_templates_for('an')[2]
        'This is a photo of an {} in the scene.'
    """
    return tuple(
        _this_is(t.replace('{article}', article)) for t in VILD_TEMPLATES)


def vild_prompts(name: str) -> List[str]:
    """The authors' 63 sentences for one raw category name.

    Examples:
        >>> vild_prompts('bat_(animal)')[0]
        'There is a bat (animal) in the scene.'
        >>> vild_prompts('apple')[8]
        'This is a photo of an apple.'
    """
    return [
        t.format(vild_processed_name(name))
        for t in vild_templates_for(vild_article(name))
    ]


_SYNONYM_MEMO: Dict[Tuple[str, float], Dict[str, List[str]]] = {}


def read_synonyms(path: str) -> Dict[str, List[str]]:
    """Synonyms of category names, from a json file.

    Either an LVIS annotation file (its ``categories``, each with ``name``
    and ``synonyms``; ``lvis_v1_val.json`` holds all 1,203) or a plain
    ``{name: [synonym, ...]}`` mapping. Read once per process and file
    version.

    Args:
        path (str): The json file.

    Returns:
        dict[str, list[str]]: Raw name -> raw synonyms.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'Synonyms file not found: {path}')
    key = (osp.realpath(path), osp.getmtime(path))
    if key not in _SYNONYM_MEMO:
        with open(path, encoding='utf-8') as f:
            data = json.load(f)
        if isinstance(data, dict) and 'categories' in data:
            data = {c['name']: list(c.get('synonyms') or [c['name']])
                    for c in data['categories']}
        if not isinstance(data, dict) or not all(
                isinstance(v, list) and all(isinstance(s, str) for s in v)
                for v in data.values()):
            raise ValueError(
                f'{path} is neither an LVIS annotation file nor a '
                '{name: [synonyms]} mapping.')
        _SYNONYM_MEMO[key] = data
    return _SYNONYM_MEMO[key]


def encode_vild_names(
    teacher,
    names: Sequence[str],
    synonyms: Union[None, str, Mapping[str, Sequence[str]]] = None
) -> torch.Tensor:
    """Text embeddings of category names with the authors' prompts.

    Each name (or each of its synonyms) is embedded as the normalised mean
    of the normalised CLIP embeddings of its :func:`vild_prompts`; a name
    with synonyms gets the normalised mean of its synonyms' embeddings.

    Args:
        teacher (CLIPTeacher): The teacher (its label cache is used).
        names (Sequence[str]): Raw category names.
        synonyms (str | Mapping, optional): A file for
            :func:`read_synonyms`, or such a mapping; names it lacks use
            themselves. A file that does not exist gives a warning and no
            synonyms (e.g. inference without LVIS's annotations at hand).
            Defaults to None (no synonyms).

    Returns:
        torch.Tensor: (len(names), D) unit-norm embeddings.
    """
    if isinstance(synonyms, str):
        if osp.isfile(synonyms):
            synonyms = read_synonyms(synonyms)
        else:
            from mmengine.logging import MMLogger
            MMLogger.get_current_instance().warning(
                f'Synonyms file {synonyms} not found: the {len(names)} '
                'categories are embedded by their names only.')
            synonyms = None
    synonyms = synonyms or {}
    groups = [list(dict.fromkeys(synonyms.get(n) or [n])) for n in names]
    units = list(dict.fromkeys(s for g in groups for s in g))
    rows: Dict[str, torch.Tensor] = {}
    for article in ('a', 'an'):
        chosen = [u for u in units if vild_article(u) == article]
        if not chosen:
            continue
        embeds = teacher.encode_labels(
            [vild_processed_name(u) for u in chosen],
            vild_templates_for(article))
        rows.update(zip(chosen, embeds))
    return torch.stack([
        F.normalize(torch.stack([rows[s] for s in g]).mean(0), dim=0)
        for g in groups
    ])
