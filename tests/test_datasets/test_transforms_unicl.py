# Copyright (c) mmovl contributors. All rights reserved.
import numpy as np
import pytest

import mmovl  # noqa: F401  (registers the components)
from mmovl.datasets.transforms.unicl import CropBox, PromptText
from mmovl.models.teachers.templates import ENSEMBLE_TEMPLATES
from mmpretrain.registry import TRANSFORMS


def _image(h=40, w=50):
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def test_registered():
    assert isinstance(TRANSFORMS.build(dict(type='CropBox')), CropBox)
    assert isinstance(TRANSFORMS.build(dict(type='PromptText')), PromptText)


def test_crop_box_scale_one_is_the_numpy_slice():
    img = _image()
    out = CropBox(scale_range=(1.0, 1.0))(
        dict(img=img, img_shape=img.shape[:2],
             crop_bbox=[3.2, 4.0, 11.7, 15.5]))
    # Outwards to whole pixels: x 3.2..11.7 -> 3..12, y 4.0..15.5 -> 4..16.
    np.testing.assert_array_equal(out['img'], img[4:16, 3:12])
    assert out['img_shape'] == (12, 9)
    assert out['img'].flags.c_contiguous


def test_crop_box_enlarges_about_the_centre():
    img = _image(100, 100)
    out = CropBox(scale_range=(1.5, 1.5))(
        dict(img=img, crop_bbox=[10, 10, 20, 30]))
    # 10 x 20 box grown by 1.5: 2.5 px each side in x, 5 px in y
    # -> [7.5, 5, 22.5, 35] -> pixels x 7..23, y 5..35.
    np.testing.assert_array_equal(out['img'], img[5:35, 7:23])


def test_crop_box_clips_to_the_image():
    img = _image(40, 50)
    out = CropBox(scale_range=(2.0, 2.0))(
        dict(img=img, crop_bbox=[0, 2, 10, 12]))
    # [-5, -3, 15, 17] clipped to the image.
    np.testing.assert_array_equal(out['img'], img[0:17, 0:15])
    out = CropBox(scale_range=(3.0, 3.0))(
        dict(img=img, crop_bbox=[40, 30, 50, 40]))
    # [30, 20, 60, 50] clipped at the far corner.
    np.testing.assert_array_equal(out['img'], img[20:40, 30:50])


def test_crop_box_random_scale_stays_in_range():
    img = _image(100, 100)
    t = CropBox()  # (1.0, 1.5)
    np.random.seed(0)
    widths = set()
    for _ in range(200):
        out = t(dict(img=img, crop_bbox=[40, 40, 60, 60]))
        h, w = out['img'].shape[:2]
        assert h == w
        # 20 px box grown by at most 5 px a side: [35, 65] at most.
        assert 20 <= w <= 30
        widths.add(w)
    assert len(widths) >= 5  # the scale really varies
    assert min(widths) <= 22 and max(widths) >= 29


def test_crop_box_without_box_is_a_no_op():
    img = _image()
    results = dict(img=img, img_shape=img.shape[:2])
    out = CropBox()(results)
    assert out['img'] is img and out['img_shape'] == (40, 50)


@pytest.mark.parametrize('scale_range', [(0, 1), (1.5, 1.0), (1.0, ),
                                         (-1, 2)])
def test_crop_box_bad_scale_range(scale_range):
    with pytest.raises(ValueError, match='scale_range'):
        CropBox(scale_range=scale_range)


@pytest.mark.parametrize('bbox,match', [([5, 5, 5, 9], 'empty'),
                                        ([60, 5, 70, 9], 'outside'),
                                        ([-9, -9, -1, -1], 'outside')])
def test_crop_box_bad_box(bbox, match):
    with pytest.raises(ValueError, match=match):
        CropBox()(dict(img=_image(), crop_bbox=bbox, img_path='x.png'))


def test_prompt_text_draws_every_template():
    t = PromptText()
    assert t.templates == ENSEMBLE_TEMPLATES
    np.random.seed(0)
    texts = [t(dict(class_name='red circle'))['text'] for _ in range(600)]
    expected = {tpl.replace('{}', 'red circle') for tpl in ENSEMBLE_TEMPLATES}
    assert set(texts) == expected
    # Each of the 12 templates about 1/12 of the time.
    counts = np.array([texts.count(e) for e in expected])
    assert counts.min() > 20
    np.random.seed(0)
    again = [t(dict(class_name='red circle'))['text'] for _ in range(600)]
    assert again == texts  # seeded draws are reproducible


def test_prompt_text_formats_custom_templates():
    t = PromptText(templates=['a {} here.', 'the {}!'], random=False)
    assert t(dict(class_name='blue cross'))['text'] == 'a blue cross here.'
    t = PromptText(templates='itap of a {}.')
    assert t(dict(class_name='cat'))['text'] == 'itap of a cat.'
    t = PromptText(templates='default')
    assert t(dict(class_name='cat'))['text'] == 'a photo of a cat.'


def test_prompt_text_keeps_captions():
    results = dict(text='two green squares.', class_name='ignored')
    assert PromptText()(results)['text'] == 'two green squares.'


def test_prompt_text_errors():
    with pytest.raises(KeyError, match='class_name'):
        PromptText()(dict(img_path='a.png'))
    with pytest.raises(ValueError, match='template'):
        PromptText(templates=['no placeholder'])
