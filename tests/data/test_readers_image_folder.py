"""The ``image_folder`` reader (:mod:`autokd.data.readers.image_folder`): real PNG/BMP/JPEG
files written with Pillow into ``tmp_path``."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from autokd.data.readers import DataReadError, read_dataset


def test_image_folder_rgb(tmp_path):
    rng = np.random.default_rng(0)
    expected = {}
    for cls in ["dog", "cat"]:
        (tmp_path / cls).mkdir()
        for name in ["b.png", "a.png"]:
            arr = rng.integers(0, 256, size=(6, 4, 3), dtype=np.uint8)  # H=6, W=4
            Image.fromarray(arr, mode="RGB").save(tmp_path / cls / name)
            expected[(cls, name)] = arr
    (tmp_path / "cat" / "notes.txt").write_text("ignored")
    ds = read_dataset("image_folder", tmp_path)
    assert ds.class_names == ["cat", "dog"]  # sorted
    assert ds.x.shape == (4, 3, 6, 4) and ds.x.dtype == np.float32
    np.testing.assert_array_equal(ds.y, [0, 0, 1, 1])
    order = [("cat", "a.png"), ("cat", "b.png"), ("dog", "a.png"), ("dog", "b.png")]
    want = np.stack([expected[k].transpose(2, 0, 1) for k in order]).astype(np.float32) / 255.0
    np.testing.assert_allclose(ds.x, want, rtol=0, atol=1e-7)
    assert ds.info["channels"] == 3


def test_image_folder_gray_default_and_forced_rgb(tmp_path):
    for i, cls in enumerate(["zero", "one"]):
        (tmp_path / cls).mkdir()
        Image.fromarray(np.full((5, 5), 10 * (i + 1), dtype=np.uint8), mode="L").save(
            tmp_path / cls / "x.bmp"
        )
    ds = read_dataset("image_folder", tmp_path)
    assert ds.x.shape == (2, 1, 5, 5)
    assert ds.class_names == ["one", "zero"]
    np.testing.assert_allclose(ds.x[0], 20 / 255.0, atol=1e-7)
    rgb = read_dataset("image_folder", tmp_path, channels=3)
    assert rgb.x.shape == (2, 3, 5, 5)
    np.testing.assert_allclose(rgb.x[1], 10 / 255.0, atol=1e-7)


def test_image_folder_sizes(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    Image.new("RGB", (8, 8), (255, 0, 0)).save(tmp_path / "a" / "1.png")
    Image.new("RGB", (4, 6), (0, 255, 0)).save(tmp_path / "b" / "1.jpg")
    with pytest.raises(DataReadError, match="different sizes.*image_size"):
        read_dataset("image_folder", tmp_path)
    ds = read_dataset("image_folder", tmp_path, image_size=[3, 5], channels=1)
    assert ds.x.shape == (2, 1, 3, 5)
    assert 0.0 <= ds.x.min() and ds.x.max() <= 1.0


def test_image_folder_errors(tmp_path):
    (tmp_path / "a").mkdir()
    with pytest.raises(DataReadError, match="contains no image files"):
        read_dataset("image_folder", tmp_path)
    (tmp_path / "a" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DataReadError, match=r"cannot read image .*broken\.png"):
        read_dataset("image_folder", tmp_path)
    with pytest.raises(DataReadError, match="invalid channels"):
        read_dataset("image_folder", tmp_path, channels=2)
