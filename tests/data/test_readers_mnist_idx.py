"""The ``mnist_idx`` reader (:mod:`autokd.data.readers.mnist_idx`): real IDX files, plain and
gzipped, written into ``tmp_path``."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from autokd.data.readers import DataReadError, read_dataset


def idx_bytes(arr: np.ndarray, magic: int | None = None) -> bytes:
    """IDX encoding of a uint8 array: magic (0, 0, 0x08, ndim), big-endian dims, data."""
    arr = np.asarray(arr, dtype=np.uint8)
    if magic is None:
        magic = 0x0800 | arr.ndim
    header = struct.pack(">I", magic) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + arr.tobytes()


def write_idx(path: Path, arr: np.ndarray, *, gz: bool = False, magic: int | None = None) -> None:
    data = idx_bytes(arr, magic)
    if gz:
        with gzip.open(str(path) + ".gz", "wb") as fh:
            fh.write(data)
    else:
        path.write_bytes(data)


def make_mnist(directory: Path, *, gz_train: bool, gz_test: bool, h: int = 28, w: int = 28):
    """Write a tiny MNIST-like IDX set; returns (train_x, train_y, test_x, test_y)."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    trx = rng.integers(0, 256, size=(5, h, w), dtype=np.uint8)
    tr_y = np.array([0, 1, 2, 9, 5], dtype=np.uint8)
    tex = rng.integers(0, 256, size=(3, h, w), dtype=np.uint8)
    te_y = np.array([7, 3, 0], dtype=np.uint8)
    write_idx(directory / "train-images-idx3-ubyte", trx, gz=gz_train)
    write_idx(directory / "train-labels-idx1-ubyte", tr_y, gz=gz_train)
    write_idx(directory / "t10k-images-idx3-ubyte", tex, gz=gz_test)
    write_idx(directory / "t10k-labels-idx1-ubyte", te_y, gz=gz_test)
    return trx, tr_y, tex, te_y


@pytest.mark.parametrize("gz_train,gz_test", [(False, False), (True, True), (True, False)])
def test_mnist_idx_all(tmp_path, gz_train, gz_test):
    trx, tr_y, tex, te_y = make_mnist(tmp_path, gz_train=gz_train, gz_test=gz_test)
    ds = read_dataset("mnist_idx", tmp_path)
    assert ds.x.shape == (8, 1, 28, 28) and ds.x.dtype == np.float32
    assert ds.y.dtype == np.int64
    np.testing.assert_array_equal(ds.y, np.concatenate([tr_y, te_y]).astype(np.int64))
    expected = np.concatenate([trx, tex])[:, None].astype(np.float32) / 255.0
    np.testing.assert_allclose(ds.x, expected, rtol=0, atol=1e-7)
    assert ds.class_names == [str(i) for i in range(10)]
    assert ds.info["format"] == "mnist_idx"
    assert ds.info["splits"] == {"train": 5, "test": 3}


def test_mnist_idx_subsets_and_header_dims(tmp_path):
    trx, tr_y, tex, te_y = make_mnist(tmp_path, gz_train=True, gz_test=True, h=7, w=5)
    train = read_dataset("mnist_idx", tmp_path, subset="train")
    test = read_dataset("mnist_idx", tmp_path, subset="test")
    assert train.x.shape == (5, 1, 7, 5)
    assert test.x.shape == (3, 1, 7, 5)
    np.testing.assert_array_equal(train.y, tr_y)
    np.testing.assert_array_equal(test.y, te_y)
    np.testing.assert_array_equal((test.x[:, 0] * 255).round().astype(np.uint8), tex)
    with pytest.raises(DataReadError, match="invalid subset"):
        read_dataset("mnist_idx", tmp_path, subset="val")


def test_mnist_idx_bad_magic(tmp_path):
    make_mnist(tmp_path, gz_train=False, gz_test=False)
    bad = np.zeros((5, 28, 28), dtype=np.uint8)
    write_idx(tmp_path / "train-images-idx3-ubyte", bad, magic=2049)
    with pytest.raises(DataReadError, match=r"bad magic number.*train-images-idx3-ubyte.*got 2049, expected 2051"):
        read_dataset("mnist_idx", tmp_path)


def test_mnist_idx_wrong_size_and_count_mismatch(tmp_path):
    make_mnist(tmp_path, gz_train=False, gz_test=False)
    img = tmp_path / "t10k-images-idx3-ubyte"
    img.write_bytes(img.read_bytes()[:-10])
    with pytest.raises(DataReadError, match="wrong size for IDX file .*t10k-images-idx3-ubyte"):
        read_dataset("mnist_idx", tmp_path, subset="test")
    write_idx(img, np.zeros((4, 28, 28), dtype=np.uint8))
    with pytest.raises(DataReadError, match="holds 4 images but .* holds 3 labels"):
        read_dataset("mnist_idx", tmp_path, subset="test")


def test_mnist_idx_missing_file(tmp_path):
    make_mnist(tmp_path, gz_train=False, gz_test=False)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    assert read_dataset("mnist_idx", tmp_path, subset="train").x.shape[0] == 5
    with pytest.raises(DataReadError, match="data path not found: .*t10k-labels-idx1-ubyte"):
        read_dataset("mnist_idx", tmp_path)
