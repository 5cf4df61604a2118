# Copyright (c) mmovl contributors. All rights reserved.
"""read_image and jpeg_damage: a user's broken image gets an error or a
warning that names it; sound JPEGs (baseline, restart markers, progressive)
pass without one."""
import io
import warnings

import cv2
import numpy as np
import pytest
from PIL import Image

from mmovl.utils.images import DamagedImageWarning, jpeg_damage, read_image


def _picture(seed=0, shape=(96, 128, 3)):
    rng = np.random.default_rng(seed)
    # Smooth gradients plus noise: a realistic mix of runs and detail.
    y, x = np.mgrid[:shape[0], :shape[1]]
    base = np.stack([x * 2, y * 2, (x + y)], -1) % 256
    return (base + rng.integers(0, 40, shape)).clip(0, 255).astype(np.uint8)


def _cv2_jpeg(img, *params):
    ok, buf = cv2.imencode('.jpg', img, list(params))
    assert ok
    return buf.tobytes()


def _pil_jpeg(img, **kwargs):
    out = io.BytesIO()
    Image.fromarray(img[..., ::-1]).save(out, 'JPEG', **kwargs)
    return out.getvalue()


@pytest.mark.parametrize('make', [
    lambda img: _cv2_jpeg(img),
    lambda img: _cv2_jpeg(img, cv2.IMWRITE_JPEG_RST_INTERVAL, 2),
    lambda img: _cv2_jpeg(img, cv2.IMWRITE_JPEG_PROGRESSIVE, 1),
    lambda img: _pil_jpeg(img, progressive=True, quality=90),
    lambda img: _pil_jpeg(img, optimize=True, comment=b'\xff\xd8 note'),
])
def test_sound_jpegs_have_no_damage(make):
    for seed in range(3):
        data = make(_picture(seed))
        assert jpeg_damage(data) is None
        # and libjpeg agrees: it decodes
        assert cv2.imdecode(np.frombuffer(data, np.uint8), 1) is not None


def test_garbled_and_cut_jpegs_are_found():
    data = _cv2_jpeg(_picture())
    sos = data.find(b'\xff\xda')
    garbled = bytearray(data)
    garbled[sos + 60] = 0xFF  # a marker inside the compressed data
    garbled[sos + 61] = 0x42
    damage = jpeg_damage(bytes(garbled))
    assert damage is not None and '0xFF42' in damage
    cut = data[:len(data) // 2]
    assert 'end-of-image' in jpeg_damage(cut)
    assert 'start-of-image' in jpeg_damage(b'\x89PNG' + data[4:])


def test_read_image_names_the_broken_file(tmp_path):
    empty = tmp_path / 'empty.png'
    empty.write_bytes(b'')
    with pytest.raises(ValueError, match=f'{empty}.*empty'):
        read_image(str(empty), 0)
    data = _cv2_jpeg(_picture())
    cut = tmp_path / 'cut.jpg'
    cut.write_bytes(data[:len(data) // 2])
    # OpenCV gives up on this one: an error, not a half picture.
    with pytest.raises(ValueError, match=f'Cannot read image {cut}'):
        read_image(str(cut), 0)
    garbled = bytearray(data)
    sos = data.find(b'\xff\xda')
    for i in range(sos + 40, len(data) - 10, 37):
        garbled[i] ^= 0x55
    bad = tmp_path / 'garbled.jpg'
    bad.write_bytes(bytes(garbled))
    # The markers are intact: libjpeg's own report gives it away.
    assert jpeg_damage(bytes(garbled)) is None
    with pytest.warns(DamagedImageWarning,
                      match=f'{bad}: damaged JPEG .*Corrupt JPEG data'):
        img = read_image(str(bad), 0)
    assert img.shape == (96, 128, 3)  # it decoded: a warning, not an error
    good = tmp_path / 'good.jpg'
    good.write_bytes(data)
    with warnings.catch_warnings():
        warnings.simplefilter('error', DamagedImageWarning)
        np.testing.assert_array_equal(
            read_image(str(good), 0),
            cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR))


def test_read_image_refuses_empty_arrays():
    with pytest.raises(ValueError, match=r'Input 3: .*empty.*\(0, 0, 3\)'):
        read_image(np.zeros((0, 0, 3), np.uint8), 3)
    with pytest.raises(ValueError, match=r'Input 0: .*\(8, 8\)'):
        read_image(np.zeros((8, 8), np.uint8), 0)
