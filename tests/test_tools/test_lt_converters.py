# Copyright (c) mmovl contributors. All rights reserved.
"""The COCO-LT and VOC-LT converters on tiny files in the official formats:
the selected images, their annotations, VOC's boxes and names, and what
:class:`mmovl.datasets.CocoMultiLabelDataset` reads from the output. Every
expectation is written out by hand from the plan of the tiny data, not
computed by the converters' code."""
import importlib.util
import json
import os.path as osp
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from mmovl.datasets import CocoMultiLabelDataset

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _load_tool(name):
    path = osp.join(REPO, 'tools', 'dataset_converters', f'{name}.py')
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


coco_lt = _load_tool('coco_lt_split')
voc_lt = _load_tool('voc_lt_split')


def _read_json(path):
    with open(path, encoding='utf-8') as f:
        return json.load(f)


def _write_text(path, text):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode('utf-8'))
    return str(path)


# -- COCO-LT -----------------------------------------------------------------
# Categories in a file order that is not the id order.
COCO_CATEGORIES = [
    dict(id=3, name='dog', supercategory='animal'),
    dict(id=1, name='person', supercategory='person'),
    dict(id=7, name='traffic light', supercategory='outdoor'),
    dict(id=5, name='hair drier', supercategory='indoor'),
    dict(id=9, name='toaster', supercategory='appliance'),
]
# The 121 listed images and the 9 others.
LISTED = list(range(5001, 5122))
OTHERS = list(range(5122, 5131))
# Which listed images (by position) show each class: person on 101 and dog
# on 100 images (head, dog at its border), traffic light on 20 (medium, at
# its border), hair drier on 19 and toaster on none (tail). LISTED[120] has
# no box.
PLAN = {
    'person': LISTED[0:101],
    'dog': LISTED[10:110],
    'traffic light': LISTED[100:120],
    'hair drier': LISTED[0:19],
}
# Boxes on the listed images: one per (class, image) of PLAN, plus a second
# person on LISTED[0]: 101 + 1 + 100 + 20 + 19.
NUM_LISTED_BOXES = 241


def _coco_labels(img_id):
    """The class names of an image, from the plan."""
    if img_id in OTHERS:
        return {'person', 'toaster'}
    return {name for name, ids in PLAN.items() if img_id in ids}


def make_coco_instances(path):
    """A tiny instances file: LISTED with PLAN's boxes, OTHERS each with a
    person and a toaster."""
    cat_id = {c['name']: c['id'] for c in COCO_CATEGORIES}
    boxes = [(name, i) for name, ids in PLAN.items() for i in ids]
    boxes.insert(3, ('person', LISTED[0]))
    boxes += [(name, i) for i in OTHERS for name in ('toaster', 'person')]
    annotations = [
        dict(id=k + 1, image_id=img_id, category_id=cat_id[name],
             bbox=[1.0, 2.0, 3.0, 4.0 + k], area=3.0 * (4.0 + k), iscrowd=0)
        for k, (name, img_id) in enumerate(boxes)
    ]
    images = [
        dict(id=i, file_name=f'{i:012d}.jpg', width=640, height=480)
        for i in LISTED + OTHERS
    ]
    coco = dict(
        info=dict(description='tiny COCO'),
        licenses=[dict(id=1, name='test')],
        images=images,
        annotations=annotations,
        categories=COCO_CATEGORIES)
    _write_text(path, json.dumps(coco))
    return coco


@pytest.fixture
def coco_files(tmp_path):
    instances = tmp_path / 'annotations' / 'instances_train2017.json'
    source = make_coco_instances(instances)
    # the list in a shuffled (reversed) order, a CRLF line, spaces, blank
    # lines and leading zeros
    ids = [str(i) for i in reversed(LISTED)]
    text = ' ' + ids[0] + ' \r\n' + '\n'.join(ids[1:-1]) + '\n\n0' + ids[-1]
    id_list = _write_text(tmp_path / 'coco_lt_img_ids.txt', text + '\n\n')
    return str(tmp_path), str(instances), id_list, source


def test_coco_lt_keeps_listed_images_and_their_annotations(
        coco_files, capsys):
    root, instances, id_list, source = coco_files
    out = osp.join(root, 'annotations', 'coco_lt_train.json')
    coco_lt.main(['--instances', instances, '--img-ids', id_list, '--out',
                  out])
    coco = _read_json(out)
    # the listed images, in list order, as they were
    assert [img['id'] for img in coco['images']] == LISTED[::-1]
    assert coco['images'][0] == dict(
        id=5121, file_name='000000005121.jpg', width=640, height=480)
    # all their boxes and only theirs, in file order, as they were
    assert len(coco['annotations']) == NUM_LISTED_BOXES
    assert {a['image_id'] for a in coco['annotations']} == set(LISTED[:120])
    kept = [a for a in source['annotations'] if a['image_id'] <= 5121]
    assert coco['annotations'] == kept
    # every category in the file's order; the other fields untouched
    assert coco['categories'] == COCO_CATEGORIES
    assert coco['info'] == dict(description='tiny COCO')
    assert coco['licenses'] == [dict(id=1, name='test')]
    printed = capsys.readouterr().out
    assert '121 images (1 without any label), 241 annotations' in printed
    # 100 images is head, 20 medium (CPRFL's metrics.py)
    assert ('5 classes: 2 head (>= 100 images), 1 medium (20-99), 2 tail '
            '(< 20)') in printed
    assert 'head: person 101, dog 100' in printed
    assert 'medium: traffic light 20' in printed


def test_coco_lt_without_list_and_dataset(coco_files):
    root, instances, id_list, source = coco_files
    train = osp.join(root, 'annotations', 'coco_lt_train.json')
    test = osp.join(root, 'annotations', 'coco_lt_test.json')
    coco_lt.main(['--instances', instances, '--img-ids', id_list, '--out',
                  train])
    coco_lt.main(['--instances', instances, '--out', test])
    assert _read_json(test) == source

    ds = CocoMultiLabelDataset(
        ann_file='annotations/coco_lt_test.json',
        unseen_file=None,
        label_split='all',
        frequency_ann_file='annotations/coco_lt_train.json',
        data_root=root,
        data_prefix='val2017')
    # CocoMultiLabelDataset orders classes by category id
    classes = ('person', 'dog', 'hair drier', 'traffic light', 'toaster')
    assert ds.metainfo['classes'] == classes
    # images per class among the listed ones, from PLAN's comment
    assert ds.metainfo['class_frequencies'] == [101, 100, 19, 20, 0]
    assert len(ds) == len(LISTED) + len(OTHERS)
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        assert info['img_path'] == osp.join(root, 'val2017',
                                            f'{info["img_id"]:012d}.jpg')
        assert {classes[j] for j in info['gt_label']
                } == _coco_labels(info['img_id'])
    assert ds.get_data_info(120)['gt_label'] == []  # LISTED[120]: no box


@pytest.mark.parametrize('lines,error', [
    (['5001', '5002', '99999'], r'ids\.txt, line 3: image id 99999 is not in '
     r'.*instances_train2017\.json$'),
    (['5001', '', '99999', '99998'], r'ids\.txt, line 3: image id 99999 is '
     r'not in .*\(1 more ids of the list are missing too\)'),
    (['5001', '5002', '5001'], r'ids\.txt, line 3: image id 5001 repeats '
     r'line 1'),
    (['', '  ', ''], r'ids\.txt lists no image ids'),
    (['5001', '5001.jpg'], r"ids\.txt, line 2: '5001\.jpg' is not a COCO "
     r'image id'),
],
                         ids=['missing', 'more missing', 'repeated', 'empty',
                              'not an id'])
def test_coco_lt_bad_lists(coco_files, lines, error):
    root, instances, _, _ = coco_files
    id_list = _write_text(osp.join(root, 'ids.txt'), '\n'.join(lines))
    out = osp.join(root, 'out.json')
    with pytest.raises(ValueError, match=error):
        coco_lt.main(['--instances', instances, '--img-ids', id_list,
                      '--out', out])
    assert not osp.exists(out)


def test_coco_lt_refuses_a_pickle(coco_files):
    root, instances, _, _ = coco_files
    id_list = osp.join(root, 'img_id.pkl')
    with open(id_list, 'wb') as f:
        f.write(pickle.dumps([5001, 5002]))  # written, never read back
    with pytest.raises(ValueError, match=r'img_id\.pkl is a binary pickle'):
        coco_lt.main(['--instances', instances, '--img-ids', id_list,
                      '--out', osp.join(root, 'out.json')])


# -- VOC ---------------------------------------------------------------------
def voc_xml(width, height, objects):
    """A VOC annotation; objects: (name, difficult or None for no tag,
    (xmin, ymin, xmax, ymax) as written), each with a part, as in VOC's
    person layout, whose name is not a class."""
    parts = []
    for name, difficult, box in objects:
        tag = ('' if difficult is None else
               f'<difficult>{difficult}</difficult>')
        coords = ''.join(
            f'<{t}>{v}</{t}>'
            for t, v in zip(('xmin', 'ymin', 'xmax', 'ymax'), box))
        parts.append(
            f'\t<object>\n\t\t<name>{name}</name>\n\t\t<pose>Left</pose>\n'
            f'\t\t<truncated>0</truncated>\n\t\t{tag}\n'
            f'\t\t<bndbox>{coords}</bndbox>\n'
            '\t\t<part><name>head</name><bndbox><xmin>1</xmin><ymin>1</ymin>'
            '<xmax>2</xmax><ymax>2</ymax></bndbox></part>\n\t</object>\n')
    return ('<annotation>\n\t<folder>VOC</folder>\n\t<filename>x.jpg'
            '</filename>\n\t<source><database>The VOC Database</database>'
            f'</source>\n\t<size>\n\t\t<width>{width}</width>\n\t\t<height>'
            f'{height}</height>\n\t\t<depth>3</depth>\n\t</size>\n'
            f'\t<segmented>0</segmented>\n{"".join(parts)}</annotation>\n')


VOC2007 = {
    '000001': (353, 500, [('dog', 0, ('48', '240', '195', '371')),
                          ('person', 0, ('8', '12', '352', '498'))]),
    '000004': (500, 406, [('tvmonitor', None, ('13', '311', '84', '362')),
                          ('pottedplant', 0, ('10.5', '20', '30.5', '40')),
                          ('dog', 0, ('1', '1', '50', '60')),
                          ('dog', 0, ('60', '1', '90', '60'))]),
    '000007': (500, 333, [('car', 0, ('141', '50', '500', '330'))]),
    '000010': (354, 480, [('cat', 1, ('87', '97', '258', '427'))]),
}
VOC2007_TEST = ['000001', '000004', '000010']  # ImageSets/Main/test.txt
VOC2012 = {
    '2008_000008': (500, 442, [('horse', 0, ('53', '87', '471', '420')),
                               ('person', 0, ('158', '44', '289', '167'))]),
    '2008_000015': (500, 327, [('bottle', 1, ('270', '1', '378', '176')),
                               ('diningtable', 0, ('1', '99', '500', '327'))]),
    '2010_000002': (500, 375, [('sheep', 0, ('1', '1', '10', '10'))]),
}
VOC_LT_LIST = ['2008_000015', '2008_000008']  # the training list

VOC_NAMES = [
    'aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car', 'cat',
    'chair', 'cow', 'dining table', 'dog', 'horse', 'motorbike', 'person',
    'potted plant', 'sheep', 'sofa', 'train', 'tv monitor'
]


def make_voc_year(root, annotations, image_sets):
    for voc_id, (w, h, objects) in annotations.items():
        _write_text(root / 'Annotations' / f'{voc_id}.xml',
                    voc_xml(w, h, objects))
    for name, ids in image_sets.items():
        _write_text(root / 'ImageSets' / 'Main' / f'{name}.txt',
                    ''.join(f'{i}\n' for i in ids))
    (root / 'JPEGImages').mkdir()


@pytest.fixture(scope='module')
def voc_dir(tmp_path_factory):
    """data/voc with VOC2007, VOC2012 and the VOC-LT list (read-only)."""
    root = tmp_path_factory.mktemp('voc')
    make_voc_year(root / 'VOC2007', VOC2007, dict(test=VOC2007_TEST))
    make_voc_year(root / 'VOC2012', VOC2012, dict(trainval=list(VOC2012)))
    (root / 'VOC2007' / 'JPEGImages' / '000001.jpg').write_bytes(b'')
    _write_text(root / 'voc_lt_img_ids.txt', '\n'.join(VOC_LT_LIST) + '\n')
    return str(root)


def _convert_voc(voc_dir, out_dir, skip_difficult=False):
    flag = ['--skip-difficult'] if skip_difficult else []
    test = osp.join(out_dir, 'voc07_test.json')
    train = osp.join(out_dir, 'voc_lt_train.json')
    voc_lt.main(['--voc-root', osp.join(voc_dir, 'VOC2007'), '--image-set',
                 'test', '--out', test] + flag)
    voc_lt.main(['--voc-root', osp.join(voc_dir, 'VOC2012'), '--img-ids',
                 osp.join(voc_dir, 'voc_lt_img_ids.txt'), '--out', train] +
                flag)
    return _read_json(test), _read_json(train)


def _labels(coco):
    names = {c['id']: c['name'] for c in coco['categories']}
    labels = {img['id']: set() for img in coco['images']}
    for a in coco['annotations']:
        labels[a['image_id']].add(names[a['category_id']])
    return labels


def test_voc_images_boxes_and_names(voc_dir, tmp_path, capsys):
    test, train = _convert_voc(voc_dir, str(tmp_path))
    assert test['images'] == [
        dict(id=1, file_name='JPEGImages/000001.jpg', width=353, height=500),
        dict(id=4, file_name='JPEGImages/000004.jpg', width=500, height=406),
        dict(id=10, file_name='JPEGImages/000010.jpg', width=354, height=480),
    ]
    assert [img['id'] for img in train['images']] == [2008000015, 2008000008]
    assert train['images'][0]['file_name'] == 'JPEGImages/2008_000015.jpg'
    # categories 1-20 in VOC's order, readable names
    assert [c['id'] for c in test['categories']] == list(range(1, 21))
    assert [c['name'] for c in test['categories']] == VOC_NAMES
    assert test['categories'][10]['voc_name'] == 'diningtable'
    assert train['categories'] == test['categories']
    # one annotation per object (parts are not objects): 2 + 4 + 1
    assert len(test['annotations']) == 7
    assert [a['id'] for a in test['annotations']] == list(range(1, 8))
    # dog of 000001, corners (48, 240) - (195, 371) inclusive, 1-based
    assert test['annotations'][0] == dict(
        id=1, image_id=1, category_id=12, bbox=[47, 239, 148, 132],
        area=19536, iscrowd=0, difficult=0)
    # tv monitor without a <difficult> tag: 13..84 x 311..362
    assert test['annotations'][2] == dict(
        id=3, image_id=4, category_id=20, bbox=[12, 310, 72, 52],
        area=3744, iscrowd=0, difficult=0)
    # potted plant with fractional corners 10.5..30.5 x 20..40
    assert test['annotations'][3]['category_id'] == 16
    assert test['annotations'][3]['bbox'] == [9.5, 19, 21.0, 21]
    assert test['annotations'][3]['area'] == 441.0
    # the difficult cat is kept, marked
    assert test['annotations'][6] == dict(
        id=7, image_id=10, category_id=8, bbox=[86, 96, 172, 331],
        area=56932, iscrowd=0, difficult=1)
    assert _labels(test) == {
        1: {'dog', 'person'},
        4: {'tv monitor', 'potted plant', 'dog'},
        10: {'cat'},
    }
    assert _labels(train) == {
        2008000015: {'bottle', 'dining table'},
        2008000008: {'horse', 'person'},
    }
    printed = capsys.readouterr().out
    assert '3 images (0 without any label), 7 annotations' in printed
    assert '20 classes: 0 head (>= 100 images), 0 medium (20-99), 20 tail' \
        in printed
    # only 000001.jpg exists
    assert 'note: 2 of the 3 images are not under' in printed


def test_voc_skip_difficult(voc_dir, tmp_path, capsys):
    test, train = _convert_voc(voc_dir, str(tmp_path), skip_difficult=True)
    # the images stay; the difficult cat and bottle go
    assert [img['id'] for img in test['images']] == [1, 4, 10]
    assert len(test['annotations']) == 6
    assert not any(a['difficult'] for a in test['annotations'])
    assert _labels(test) == {
        1: {'dog', 'person'},
        4: {'tv monitor', 'potted plant', 'dog'},
        10: set(),
    }
    assert _labels(train) == {
        2008000015: {'dining table'},
        2008000008: {'horse', 'person'},
    }
    assert '3 images (1 without any label), 6 annotations' in \
        capsys.readouterr().out


def test_voc_dataset(voc_dir, tmp_path):
    _convert_voc(voc_dir, str(tmp_path))
    # the layout of configs/cprfl/cprfl_r101_80e_voc_lt.py: data_root holds
    # the year folders; the annotation files may lie anywhere
    ds = CocoMultiLabelDataset(
        ann_file=str(tmp_path / 'voc07_test.json'),
        unseen_file=None,
        label_split='all',
        frequency_ann_file=str(tmp_path / 'voc_lt_train.json'),
        data_root=voc_dir,
        data_prefix='VOC2007')
    assert ds.metainfo['classes'] == tuple(VOC_NAMES)
    # the VOC-LT list's images per class: bottle, dining table, horse and
    # person on one image each
    expected = [0] * 20
    for name in ('bottle', 'dining table', 'horse', 'person'):
        expected[VOC_NAMES.index(name)] = 1
    assert ds.metainfo['class_frequencies'] == expected
    gt = {
        1: {'dog', 'person'},
        4: {'tv monitor', 'potted plant', 'dog'},
        10: {'cat'},
    }
    assert len(ds) == 3
    for i, voc_id in enumerate(VOC2007_TEST):
        info = ds.get_data_info(i)
        # data_prefix is the year folder: JPEGImages/ comes from file_name
        assert info['img_path'] == osp.join(voc_dir, 'VOC2007', 'JPEGImages',
                                            f'{voc_id}.jpg')
        assert {VOC_NAMES[j] for j in info['gt_label']} == gt[int(voc_id)]


def test_voc_script_is_deterministic(voc_dir, tmp_path):
    first = tmp_path / 'a.json'
    voc_lt.main(['--voc-root', osp.join(voc_dir, 'VOC2007'), '--image-set',
                 'test', '--out', str(first)])
    second = tmp_path / 'b.json'
    result = subprocess.run([
        sys.executable,
        osp.join(REPO, 'tools', 'dataset_converters', 'voc_lt_split.py'),
        '--voc-root', osp.join(voc_dir, 'VOC2007'), '--image-set', 'test',
        '--out', str(second)
    ], capture_output=True, text=True, check=True)
    assert 'tail' in result.stdout
    assert first.read_bytes() == second.read_bytes()


def _bad_voc(tmp_path, objects):
    root = tmp_path / 'VOC2012'
    _write_text(root / 'Annotations' / '2012_000003.xml',
                voc_xml(500, 375, objects))
    return str(root)


@pytest.mark.parametrize('objects,error', [
    ([('person', 0, ('1', '1', '5', '5')),
      ('dining table', 0, ('1', '1', '5', '5'))],
     r"2012_000003\.xml, object 2: unknown class 'dining table'"),
    ([('cow', 0, ('50', '1', '40', '5'))],
     r'2012_000003\.xml, object 1 \(cow\): malformed box xmin 50, ymin 1, '
     r'xmax 40'),
    ([('cow', 0, ('1', 'abc', '40', '5'))],
     r"2012_000003\.xml, object 1 \(cow\): <ymin> is 'abc', not a number"),
    ([('cow', 2, ('1', '1', '40', '5'))],
     r'2012_000003\.xml, object 1: <difficult> is 2, not 0/1'),
],
                         ids=['class', 'box', 'number', 'difficult'])
def test_voc_bad_annotations(tmp_path, objects, error):
    root = _bad_voc(tmp_path, objects)
    ids = _write_text(tmp_path / 'ids.txt', '2012_000003\n')
    out = tmp_path / 'out.json'
    with pytest.raises(ValueError, match=error):
        voc_lt.main(['--voc-root', root, '--img-ids', ids, '--out',
                     str(out)])
    assert not out.exists()


def test_voc_bad_lists(voc_dir, tmp_path):
    root = osp.join(voc_dir, 'VOC2012')
    out = str(tmp_path / 'out.json')

    def run(text):
        ids = _write_text(tmp_path / 'ids.txt', text)
        voc_lt.main(['--voc-root', root, '--img-ids', ids, '--out', out])

    with pytest.raises(FileNotFoundError,
                       match=r'Annotations/2011_000001\.xml not found \(image '
                       r'id 2011_000001 of .*ids\.txt, line 2\)'):
        run('2008_000008\n2011_000001\n')
    with pytest.raises(ValueError, match=r'line 3: image id 2008_000008 '
                       r'repeats line 1'):
        run('2008_000008\n2008_000015\n2008_000008\n')
    with pytest.raises(ValueError, match=r"line 1: '2008_000008\.jpg' is not "
                       r'a VOC image id'):
        run('2008_000008.jpg\n')
    with pytest.raises(ValueError, match=r'line 2: image id 2008000008 gives '
                       r'the same integer id 2008000008 as 2008_000008 of '
                       r'line 1'):
        run('2008_000008\n2008000008\n')
    with pytest.raises(ValueError, match=r'ids\.txt lists no image ids'):
        run('\n')
    assert not osp.exists(out)
