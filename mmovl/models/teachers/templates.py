# Copyright (c) mmovl contributors. All rights reserved.
"""Prompt templates that turn a label name into a sentence for CLIP."""
from typing import Sequence, Tuple, Union

__all__ = ['DEFAULT_TEMPLATES', 'ENSEMBLE_TEMPLATES', 'resolve_templates']

# The manual template of the methods mmovl implements (see METHODS.md).
DEFAULT_TEMPLATES: Tuple[str, ...] = ('a photo of a {}.', )

# A short ensemble in the spirit of CLIP's prompt engineering: varied
# framing, size, lighting and rendering, averaged so that no single phrasing
# dominates a label's embedding.
ENSEMBLE_TEMPLATES: Tuple[str, ...] = (
    'a photo of a {}.',
    'a close-up photo of the {}.',
    'a photo of a small {}.',
    'a photo of a big {}.',
    'a blurry photo of a {}.',
    'a bright photo of the {}.',
    'a dark photo of the {}.',
    'a cropped photo of a {}.',
    'a low-resolution photo of a {}.',
    'a picture showing a {}.',
    'an image containing the {}.',
    'a drawing of a {}.',
)

_NAMED = {'default': DEFAULT_TEMPLATES, 'ensemble': ENSEMBLE_TEMPLATES}


def resolve_templates(
        templates: Union[None, str, Sequence[str]] = None) -> Tuple[str, ...]:
    """Turn a templates argument into a tuple of format strings.

    Args:
        templates (None | str | Sequence[str]): None or ``'default'`` for
            :data:`DEFAULT_TEMPLATES`, ``'ensemble'`` for
            :data:`ENSEMBLE_TEMPLATES`, one template containing ``'{}'``, or
            a sequence of such templates. Defaults to None.

    Returns:
        tuple[str]: The templates, each with exactly one ``'{}'``.

    Examples:
        >>> resolve_templates()
        ('a photo of a {}.',)
        >>> resolve_templates('a sketch of a {}.')
        ('a sketch of a {}.',)
        >>> len(resolve_templates('ensemble'))
        12
    """
    if templates is None:
        return DEFAULT_TEMPLATES
    if isinstance(templates, str):
        templates = _NAMED.get(templates, (templates, ))
    templates = tuple(templates)
    if not templates:
        raise ValueError('Expected at least one prompt template.')
    for template in templates:
        if not isinstance(template, str) or template.count('{}') != 1:
            raise ValueError(
                'Each prompt template must be a string with exactly one '
                f"'{{}}' for the label name (or 'default'/'ensemble'); got "
                f'{template!r}.')
    return templates
