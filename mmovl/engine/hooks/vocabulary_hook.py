# Copyright (c) mmovl contributors. All rights reserved.
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmpretrain.registry import HOOKS


@HOOKS.register_module()
class VocabularyHook(Hook):
    """Give an open-vocabulary model the label names of the data at hand.

    Calls ``model.set_vocabulary(dataset.metainfo['classes'])`` with the
    training set's classes before each training epoch (e.g. the seen labels)
    and with the evaluation set's before each validation and test epoch
    (seen, unseen or all labels), so the vocabulary is whatever the data
    declares, not something fixed in the weights.

    Args:
        train (bool): Also set the training vocabulary. Off for models whose
            training does not score labels (e.g. UniCL). Defaults to True.

    Examples:
        >>> custom_hooks = [dict(type='VocabularyHook')]
    """

    priority = 'NORMAL'

    def __init__(self, train: bool = True) -> None:
        self.train = train

    @staticmethod
    def _set(runner, loader, evaluate: bool = True) -> None:
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        classes = loader.dataset.metainfo.get('classes')
        if not classes:
            raise ValueError(
                f'{type(loader.dataset).__name__} declares no classes in its '
                'metainfo; VocabularyHook cannot set the vocabulary')
        model.set_vocabulary(classes)
        if hasattr(model, 'set_zsl_vocabulary'):
            unseen = loader.dataset.metainfo.get('unseen_classes') \
                if evaluate else None
            model.set_zsl_vocabulary(list(unseen) if unseen else None)

    def before_train_epoch(self, runner) -> None:
        if self.train:
            self._set(runner, runner.train_dataloader, evaluate=False)

    def before_val_epoch(self, runner) -> None:
        self._set(runner, runner.val_dataloader)

    def before_test_epoch(self, runner) -> None:
        self._set(runner, runner.test_dataloader)
