# Copyright (c) mmovl contributors. All rights reserved.
from mmdet.registry import HOOKS as MMDET_HOOKS
from mmengine.model import is_model_wrapper

from .vocabulary_hook import VocabularyHook


@MMDET_HOOKS.register_module()
class DetVocabularyHook(VocabularyHook):
    """:class:`VocabularyHook` for open-vocabulary detectors (mmdet scope).

    Calls ``model.set_vocabulary(classes, novel_names)`` with the data set's
    ``metainfo['classes']`` and those of its ``metainfo['novel_classes']``
    (as mmdet's ``OVCocoMetric`` reads them) that are in ``classes``: a
    training set of base categories has none, an evaluation set over base
    and novel categories marks the novel ones.

    Registered in mmdet's ``HOOKS`` as ``'DetVocabularyHook'`` only;
    ``'VocabularyHook'`` is classification's (mmpretrain's ``HOOKS``).

    Args:
        train (bool): Also set the training vocabulary. Defaults to True.

    Examples:
        >>> custom_hooks = [dict(type='DetVocabularyHook')]
    """

    @staticmethod
    def _set(runner, loader, evaluate: bool = True) -> None:
        # ``evaluate`` (VocabularyHook's ZSL vocabulary) is classification's;
        # a detector scores its whole vocabulary either way.
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        metainfo = loader.dataset.metainfo
        classes = metainfo.get('classes')
        if not classes:
            raise ValueError(
                f'{type(loader.dataset).__name__} declares no classes in its '
                'metainfo; DetVocabularyHook cannot set the vocabulary')
        known = set(classes)
        novel = [n for n in metainfo.get('novel_classes', ()) if n in known]
        model.set_vocabulary(classes, novel or None)
