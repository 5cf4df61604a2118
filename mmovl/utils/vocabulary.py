# Copyright (c) mmovl contributors. All rights reserved.
"""Checks of label-name lists that every reader of a vocabulary shares."""
from typing import (Any, Callable, Dict, Hashable, Iterable, List, Optional,
                    Sequence, Tuple)

__all__ = [
    'alike_names', 'check_unique_names', 'fold_name', 'truncated_names'
]


def _positions(positions: List[int]) -> str:
    return ', '.join(map(str, positions[:-1])) + f' and {positions[-1]}'


def check_unique_names(names: Iterable[Hashable],
                       what: str = 'names',
                       context: Optional[str] = None,
                       max_shown: int = 5) -> None:
    """Raise a ValueError if a name occurs more than once in ``names``.

    One pass over the names with a dict (O(n)), so lists of millions of
    labels or image ids are checked as fast as they are read. The error
    names the repeated names, in the order of their first repeat, and the
    positions (0-based indices into ``names``) where each occurs.

    Args:
        names (Iterable[Hashable]): The names (label names, MIDs, ...).
        what (str): What the names are, for the message (``'label names'``,
            ``'category names'``). Defaults to ``'names'``.
        context (str, optional): Where they come from, put in front of the
            message (a file path, ``'The vocabulary'``). Defaults to None.
        max_shown (int): At most this many repeated names are spelled out;
            the message counts the rest. Defaults to 5.

    Raises:
        ValueError: ``"<context>: duplicate <what>: [...] (...)"``, or
        ``"Duplicate <what>: [...] (...)"`` without a context; in the
        parentheses, where each shown name occurs.

    Examples:
        >>> check_unique_names(['cat', 'dog'])
        >>> check_unique_names(['cat', 'dog', 'cat'], 'label names',
        ...                    'labels.txt')
        Traceback (most recent call last):
        ...
        ValueError: labels.txt: duplicate label names: ['cat'] (at positions 0 and 2)
    """  # noqa: E501
    first: Dict[Hashable, int] = {}
    repeated: Dict[Hashable, List[int]] = {}
    for index, name in enumerate(names):
        seen_at = first.setdefault(name, index)
        if seen_at != index:
            repeated.setdefault(name, [seen_at]).append(index)
    if not repeated:
        return
    shown = list(repeated)[:max_shown]
    if len(shown) == 1:
        where = f'at positions {_positions(repeated[shown[0]])}'
    else:
        where = '; '.join(f'{name!r} at positions {_positions(repeated[name])}'
                          for name in shown)
    more = len(repeated) - len(shown)
    rest = f' and {more} more' if more else ''
    head = f'{context}: duplicate' if context else 'Duplicate'
    raise ValueError(f'{head} {what}: {shown}{rest} ({where})')


def fold_name(name: str) -> str:
    """A label name as CLIP's tokenizer sees it: lower case, runs of white
    space as one space, none at the ends.

    Examples:
        >>> fold_name('  Red   Circle ')
        'red circle'
    """
    return ' '.join(str(name).lower().split())


def alike_names(names: Iterable[str]) -> List[List[str]]:
    """Groups of different names that :func:`fold_name` makes equal: CLIP
    encodes them alike, so a model that scores names through it gives them
    equal scores and cannot tell them apart.

    Args:
        names (Iterable[str]): The label names.

    Returns:
        list[list[str]]: Each group of two or more distinct names that fold
        alike, in the order of their first names; each group in the order
        of the names. Empty if there are none.

    Examples:
        >>> alike_names(['red circle', 'Red Circle', 'blue square',
        ...              'red  circle'])
        [['red circle', 'Red Circle', 'red  circle']]
    """
    groups: Dict[str, List[str]] = {}
    for name in dict.fromkeys(names):
        groups.setdefault(fold_name(name), []).append(name)
    return [group for group in groups.values() if len(group) > 1]


def truncated_names(names: Sequence[str], templates: Sequence[str],
                    tokenize: Callable[[List[str]], Any]
                    ) -> Tuple[List[str], List[List[str]]]:
    """Names whose prompts CLIP cuts at its context length, and groups of
    names whose cut prompts are equal (the model cannot tell those apart).

    Only names long enough to be cut in the longest template (with a few
    tokens' margin for merges at the name's edges) are tokenised in every
    template, so a large vocabulary costs one tokenisation of its names.

    Args:
        names (Sequence[str]): The label names.
        templates (Sequence[str]): The prompt templates (``'{}'`` style).
        tokenize (callable): open_clip's tokenizer: a list of texts to a
            (N, context_length) integer tensor, 0 after the end token; a cut
            text has a non-zero last position.

    Returns:
        tuple: The cut names (in order), and the groups of two or more names
        whose cut prompts are equal under every template.
    """
    names = list(names)
    if not names:
        return [], []
    rows = tokenize(names)
    context = rows.shape[1]
    lengths = (rows != 0).sum(1).tolist()
    # Tokens a template adds around the name (its start / end tokens are
    # counted in the name's length too).
    extra = int((tokenize([t.format('') for t in templates]) != 0).sum(1)
                .max()) - 2
    threshold = context - extra - 3
    candidates = [n for n, k in zip(names, lengths) if k >= threshold]
    if not candidates:
        return [], []
    cut, prompts = set(), {}
    for name in candidates:
        tokens = tokenize([t.format(name) for t in templates])
        if bool((tokens[:, -1] != 0).any()):
            cut.add(name)
        prompts[name] = tuple(map(tuple, tokens.tolist()))
    groups: Dict[tuple, List[str]] = {}
    for name in candidates:
        if name in cut:
            groups.setdefault(prompts[name], []).append(name)
    return ([n for n in candidates if n in cut],
            [g for g in groups.values() if len(set(g)) > 1])
