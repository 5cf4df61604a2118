# Copyright (c) mmovl contributors. All rights reserved.
from types import SimpleNamespace

import pytest

from mmovl.engine.hooks.vocabulary_hook import VocabularyHook


class _Recorder:
    """A model that records what the hook tells it."""

    def __init__(self, zsl=True):
        self.calls = []
        if zsl:
            self.set_zsl_vocabulary = lambda names: self.calls.append(
                ('zsl', names))

    def set_vocabulary(self, names):
        self.calls.append(('vocabulary', list(names)))


def _loader(**metainfo):
    return SimpleNamespace(dataset=SimpleNamespace(metainfo=metainfo))


def _runner(model):
    return SimpleNamespace(
        model=model,
        train_dataloader=_loader(classes=('cat', 'dog')),
        val_dataloader=_loader(classes=('cat', 'dog', 'cow', 'owl'),
                               unseen_classes=('cow', 'owl')),
        test_dataloader=_loader(classes=('cat', 'dog')))


def test_unseen_classes_become_the_zsl_vocabulary_at_evaluation():
    model = _Recorder()
    runner, hook = _runner(model), VocabularyHook()
    hook.before_train_epoch(runner)
    hook.before_val_epoch(runner)
    hook.before_test_epoch(runner)  # a test set without unseen classes
    assert model.calls == [
        ('vocabulary', ['cat', 'dog']), ('zsl', None),
        ('vocabulary', ['cat', 'dog', 'cow', 'owl']), ('zsl', ['cow', 'owl']),
        ('vocabulary', ['cat', 'dog']), ('zsl', None),
    ]
    # models without a ZSL vocabulary get the plain one
    plain = _Recorder(zsl=False)
    hook.before_val_epoch(_runner(plain))
    assert plain.calls == [('vocabulary', ['cat', 'dog', 'cow', 'owl'])]
    with pytest.raises(ValueError, match='declares no classes'):
        VocabularyHook._set(SimpleNamespace(model=plain), _loader())
