# Copyright (c) mmovl contributors. All rights reserved.
import re

import pytest
import torch

from mmovl.utils.vocabulary import check_unique_names


def test_unique_names_pass():
    check_unique_names([])
    check_unique_names(['cat', 'dog', 'Cat', 'cat '])
    check_unique_names(iter(['a', 'b']))  # any iterable, read once
    check_unique_names(['/m/01', '/m/02'], 'labels', 'classes.txt')


def test_one_duplicate_named_with_its_positions():
    with pytest.raises(ValueError) as info:
        check_unique_names(['cat', 'dog', 'bird', 'cat'], 'label names',
                           'labels.txt')
    assert str(info.value) == ("labels.txt: duplicate label names: ['cat'] "
                               '(at positions 0 and 3)')


def test_several_duplicates_each_with_every_position():
    names = ['b', 'a', 'b', 'c', 'a', 'b']
    with pytest.raises(ValueError) as info:
        check_unique_names(names)
    # no context: the message starts with the kind of names; the repeated
    # names come in the order of their first repeat
    assert str(info.value) == ("Duplicate names: ['b', 'a'] ('b' at "
                               "positions 0, 2 and 5; 'a' at positions 1 "
                               'and 4)')


def test_many_duplicates_are_counted_beyond_max_shown():
    names = [f'n{i}' for i in range(10)] * 2
    with pytest.raises(ValueError) as info:
        check_unique_names(names, 'category names', 'ann.json', max_shown=3)
    message = str(info.value)
    assert message.startswith("ann.json: duplicate category names: "
                              "['n0', 'n1', 'n2'] and 7 more (")
    assert "'n2' at positions 2 and 12)" in message
    assert 'n3' not in message


def test_large_lists_and_other_hashables():
    # one pass with a dict: a million names is no burden (the former
    # list.count() loops were quadratic)
    names = list(range(1_000_000))
    check_unique_names(names)
    names.append(999_999)
    with pytest.raises(
            ValueError,
            match=re.escape('[999999] (at positions 999999 and 1000000)')):
        check_unique_names(names, 'ids')


def test_callers_keep_their_context(tmp_path):
    """Each reader names its file (or the vocabulary) in front."""
    from mmovl.datasets.coco_multi_label import read_label_file
    from mmovl.datasets.nus_wide_official import nus_wide_vocabulary
    from mmovl.datasets.open_images import read_label_list
    from mmovl.models.classifiers.utils import check_vocabulary

    labels = tmp_path / 'labels.txt'
    labels.write_text('cat\ndog\ncat\n')
    with pytest.raises(ValueError, match=re.escape(
            f"{labels}: duplicate label names: ['cat'] (at positions 0 "
            'and 2)')):
        read_label_file(str(labels))

    mids = tmp_path / 'classes-trainable.txt'
    mids.write_text('/m/01\n/m/02\n/m/01\n')
    with pytest.raises(
            ValueError,
            match=re.escape(f"{mids}: duplicate labels: ['/m/01']")):
        read_label_list(str(mids))

    concepts = tmp_path / 'ConceptsList' / 'Concepts81.txt'
    concepts.parent.mkdir()
    concepts.write_text('sky\nsea\nsky\n')
    with pytest.raises(
            ValueError,
            match=re.escape(f"{concepts}: duplicate names: ['sky']")):
        nus_wide_vocabulary(str(tmp_path))

    with pytest.raises(ValueError, match=re.escape(
            "The vocabulary: duplicate names: ['a'] (at positions 0 and 1)")):
        check_vocabulary(['a', 'a'])


def test_mkt_converter_keeps_its_error_type(tmp_path):
    import importlib.util
    import os.path as osp
    repo = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    spec = importlib.util.spec_from_file_location(
        'mkt_to_mmovl',
        osp.join(repo, 'tools', 'model_converters', 'mkt_to_mmovl.py'))
    conv = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conv)
    seen, unseen = tmp_path / 'Concepts925.txt', tmp_path / 'Concepts81.txt'
    seen.write_text('boat\nsky\n')
    unseen.write_text('cat\nsky\n')
    assert conv.read_names([str(seen)]) == [['boat', 'sky']]
    with pytest.raises(conv.ConversionError, match=re.escape(
            "read as one list: duplicate label names: ['sky'] (at positions "
            '1 and 3).')):
        conv.read_names([str(seen), str(unseen)])


def test_truncated_names_against_the_tokenizer():
    """Two long names that differ only after CLIP's 77th token are found
    alike; a long name that differs early is cut but not alike; short names
    are left alone. Checked against the tokenizer's own rows."""
    import open_clip

    from mmovl.utils.vocabulary import truncated_names
    tokenize = open_clip.get_tokenizer('ViT-B-16')
    stem = ' '.join(['striped'] * 80)
    a, b = stem + ' cat', stem + ' dog'
    c = 'spotted ' + ' '.join(['striped'] * 79) + ' cat'
    names = ['cat', a, 'dog', b, c]
    templates = ['a photo of a {}.', 'itap of the {}.']
    cut, alike = truncated_names(names, templates, tokenize)
    assert cut == [a, b, c]
    assert alike == [[a, b]]
    # brute force: the rows CLIP reads
    for t in templates:
        rows = tokenize([t.format(n) for n in names])
        assert torch.equal(rows[1], rows[3])
        assert not torch.equal(rows[1], rows[4])
        assert (rows[[0, 2], -1] == 0).all()
        assert (rows[[1, 3, 4], -1] != 0).all()
    assert truncated_names(['cat', 'dog'], templates, tokenize) == ([], [])


def test_check_vocabulary_warns_about_names_clip_reads_alike():
    from unittest import mock

    from mmengine.logging import MMLogger

    from mmovl.models.classifiers.utils import check_vocabulary
    from mmovl.utils.vocabulary import alike_names, fold_name
    names = ['red circle', 'Red Circle', 'blue square', 'red  circle ']
    # brute force: every pair whose folded forms are equal
    pairs = {(a, b) for a in names for b in names
             if a != b and fold_name(a) == fold_name(b)}
    assert {(a, b) for g in alike_names(names) for a in g for b in g
            if a != b} == pairs
    logger = MMLogger.get_current_instance()
    with mock.patch.object(logger, 'warning') as warning:
        assert check_vocabulary(names) == names
    message = warning.call_args[0][0]
    assert "'Red Circle'" in message and "'red  circle '" in message
    with mock.patch.object(logger, 'warning') as warning:
        check_vocabulary(['red circle', 'blue square'])
    warning.assert_not_called()
