# Copyright (c) mmovl contributors. All rights reserved.
"""Annotation files are data: reading one never runs code it holds."""
import json
import os
import pickle

import pytest

from mmovl.datasets import CocoMultiLabelDataset
from mmovl.datasets.coco_object_crops import CocoObjectCrops
from mmovl.datasets.unicl_dataset import CocoCaptionPairs
from mmovl.utils import load_json

DATASETS = [CocoMultiLabelDataset, CocoObjectCrops, CocoCaptionPairs]


class _Payload:
    """Unpickling this creates the marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, 'w'))


def _hostile_files(tmp_path):
    marker = tmp_path / 'ran'
    pkl = tmp_path / 'ann.pkl'
    pkl.write_bytes(pickle.dumps(_Payload(str(marker))))
    yaml = tmp_path / 'ann.yaml'
    yaml.write_text(f'!!python/object/apply:builtins.open ["{marker}", "w"]\n')
    return marker, [pkl, yaml]


@pytest.mark.parametrize('dataset', DATASETS, ids=lambda d: d.__name__)
def test_a_pickle_or_yaml_annotation_is_refused_unrun(tmp_path, dataset):
    marker, files = _hostile_files(tmp_path)
    for path in files:
        with pytest.raises(ValueError, match=str(path)):
            dataset(ann_file=str(path), pipeline=[])
    assert not marker.exists()


def test_load_json_names_the_file(tmp_path):
    good = tmp_path / 'good.json'
    good.write_bytes(b'\xef\xbb\xbf' + json.dumps({'a': [1, 2]}).encode())
    assert load_json(str(good)) == {'a': [1, 2]}  # a BOM is allowed
    bad = tmp_path / 'bad.json'
    bad.write_text('{"images": [1, 2,\n  }')
    with pytest.raises(ValueError,
                       match=rf'{bad} is not valid JSON: .*line 2'):
        load_json(str(bad))
    latin = tmp_path / 'latin.json'
    latin.write_bytes('{"name": "caf\xe9"}'.encode('latin-1'))
    with pytest.raises(ValueError, match=rf'{latin} is not UTF-8'):
        load_json(str(latin))
    with pytest.raises(FileNotFoundError, match='missing.json'):
        load_json(os.path.join(tmp_path, 'missing.json'))
    with pytest.raises(ValueError, match='JSON files only'):
        load_json(str(tmp_path / 'ann.txt'))


def _coco(tmp_path, images, annotations, categories):
    path = tmp_path / 'instances.json'
    path.write_text(json.dumps(dict(images=images, annotations=annotations,
                                    categories=categories)))
    return str(path)


def test_inconsistent_coco_files_are_refused(tmp_path):
    """Each of these changed the labels (and so mAP) with exit 0."""
    images = [dict(id=1, file_name='a.jpg'), dict(id=2, file_name='b.jpg')]
    cats = [dict(id=1, name='cat'), dict(id=2, name='dog')]
    good = [dict(id=10, image_id=1, category_id=1),
            dict(id=11, image_id=2, category_id=2)]
    ds = CocoMultiLabelDataset(ann_file=_coco(tmp_path, images, good, cats),
                               pipeline=[])
    assert [ds.get_data_info(i)['gt_label'] for i in range(2)] == [[0], [1]]
    cases = {
        'category_id 7, which is not in "categories"':
        (images, good + [dict(id=12, image_id=1, category_id=7)], cats),
        'image id 2 is listed twice':
        (images + [dict(id=2, file_name='c.jpg')], good, cats),
        'category id 2 is listed twice':
        (images, good, cats + [dict(id=2, name='cow')]),
        'for image 9, which is not in "images"':
        (images, good + [dict(id=13, image_id=9, category_id=1)], cats),
    }
    for message, parts in cases.items():
        path = _coco(tmp_path, *parts)
        with pytest.raises(ValueError, match=message):
            CocoMultiLabelDataset(ann_file=path, pipeline=[])


def test_label_files_bom_and_encoding(tmp_path):
    images = [dict(id=1, file_name='a.jpg')]
    cats = [dict(id=1, name='cat'), dict(id=2, name='dog')]
    anns = [dict(id=1, image_id=1, category_id=2)]
    path = _coco(tmp_path, images, anns, cats)
    bom = tmp_path / 'unseen_bom.txt'
    bom.write_bytes(b'\xef\xbb\xbfdog\n')
    ds = CocoMultiLabelDataset(ann_file=path, unseen_file=str(bom),
                               pipeline=[])
    assert ds.metainfo['unseen_classes'] == ('dog', )
    latin = tmp_path / 'unseen_latin.txt'
    latin.write_bytes('caf\xe9\n'.encode('latin-1'))
    with pytest.raises(ValueError, match=rf'{latin} is not UTF-8'):
        CocoMultiLabelDataset(ann_file=path, unseen_file=str(latin),
                              pipeline=[])
