"""Tests for :mod:`autokd.data.readers`.

Every test writes small files in the real on-disk format into ``tmp_path``
and reads them back; nothing is downloaded.
"""

from __future__ import annotations

import gzip
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from autokd.data.readers import READERS, DataReadError, RawDataset, read_dataset

# ---------------------------------------------------------------------------
# helpers writing real formats
# ---------------------------------------------------------------------------


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


def cifar_records(labels: list[list[int]], seed: int) -> tuple[bytes, np.ndarray]:
    """CIFAR binary records: label byte(s) followed by 3072 channel-major pixel bytes."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(len(labels), 3, 32, 32), dtype=np.uint8)
    out = bytearray()
    for lab, px in zip(labels, pixels):
        out += bytes(lab) + px.tobytes()
    return bytes(out), pixels


# ---------------------------------------------------------------------------
# registry / generic behaviour
# ---------------------------------------------------------------------------


def test_registry_has_contract_sources():
    for name in ["digits", "mnist_idx", "cifar10", "cifar100", "image_folder", "csv", "npz"]:
        assert name in READERS and callable(READERS[name])


def test_unknown_source_and_option():
    with pytest.raises(DataReadError, match="unknown data source 'nope'"):
        read_dataset("nope", None)
    with pytest.raises(DataReadError, match="unknown option.*bogus"):
        read_dataset("csv", "x.csv", bogus=1)


@pytest.mark.parametrize("source", ["mnist_idx", "cifar10", "cifar100", "image_folder", "csv", "npz"])
def test_missing_path(tmp_path, source):
    missing = tmp_path / "does-not-exist"
    with pytest.raises(DataReadError, match="data path not found: .*does-not-exist"):
        read_dataset(source, missing)


def test_no_path_given():
    with pytest.raises(DataReadError, match="needs a data path"):
        read_dataset("csv", None)


def test_reader_module_does_not_import_torch():
    """readers.py itself needs only numpy/Pillow/stdlib (the package __init__ may import more)."""
    import autokd.data.readers as mod

    code = (
        "import importlib.util, sys; "
        f"spec = importlib.util.spec_from_file_location('_readers_only', {mod.__file__!r}); "
        "m = importlib.util.module_from_spec(spec); sys.modules['_readers_only'] = m; "
        "spec.loader.exec_module(m); "
        "bad = [n for n in ('torch', 'torchvision', 'autokd') if n in sys.modules]; "
        "assert not bad, bad; assert 'npz' in m.READERS"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------------------
# digits
# ---------------------------------------------------------------------------


def test_digits():
    ds = read_dataset("digits", None)
    assert isinstance(ds, RawDataset)
    assert ds.x.shape == (1797, 1, 8, 8) and ds.x.dtype == np.float32
    assert ds.y.shape == (1797,) and ds.y.dtype == np.int64
    assert ds.class_names == [str(i) for i in range(10)]
    assert set(np.unique(ds.y).tolist()) == set(range(10))
    assert ds.x.min() >= 0.0 and ds.x.max() <= 1.0 and ds.x.max() == 1.0


# ---------------------------------------------------------------------------
# MNIST IDX
# ---------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------
# CIFAR
# ---------------------------------------------------------------------------


def make_cifar10(directory: Path, with_meta: bool = True):
    directory.mkdir(parents=True, exist_ok=True)
    xs, ys = [], []
    for i in range(1, 6):
        labels = [[i], [(i + 3) % 10]]
        data, px = cifar_records(labels, seed=i)
        (directory / f"data_batch_{i}.bin").write_bytes(data)
        xs.append(px)
        ys += [lab[0] for lab in labels]
    test_labels = [[9], [0], [4]]
    data, px = cifar_records(test_labels, seed=99)
    (directory / "test_batch.bin").write_bytes(data)
    xs.append(px)
    ys += [lab[0] for lab in test_labels]
    if with_meta:
        names = [f"class{i}" for i in range(10)]
        (directory / "batches.meta.txt").write_text("\n".join(names) + "\n\n")
    return np.concatenate(xs), np.array(ys, dtype=np.int64)


def test_cifar10_parent_dir(tmp_path):
    px, ys = make_cifar10(tmp_path / "cifar-10-batches-bin")
    ds = read_dataset("cifar10", tmp_path)  # parent directory accepted
    assert ds.x.shape == (13, 3, 32, 32) and ds.x.dtype == np.float32
    np.testing.assert_array_equal(ds.y, ys)
    np.testing.assert_allclose(ds.x, px.astype(np.float32) / 255.0, rtol=0, atol=1e-7)
    assert ds.class_names == [f"class{i}" for i in range(10)]
    assert ds.info["splits"] == {"train": 10, "test": 3}

    test = read_dataset("cifar10", tmp_path / "cifar-10-batches-bin", subset="test")
    np.testing.assert_array_equal(test.y, [9, 0, 4])
    np.testing.assert_array_equal((test.x * 255).round().astype(np.uint8), px[10:])
    assert read_dataset("cifar10", tmp_path, subset="train").x.shape == (10, 3, 32, 32)


def test_cifar10_default_names_without_meta(tmp_path):
    make_cifar10(tmp_path, with_meta=False)
    ds = read_dataset("cifar10", tmp_path, subset="test")
    assert ds.class_names[0] == "airplane" and len(ds.class_names) == 10


def test_cifar10_truncated(tmp_path):
    make_cifar10(tmp_path)
    f = tmp_path / "data_batch_3.bin"
    f.write_bytes(f.read_bytes()[:-1])
    with pytest.raises(DataReadError, match=r"wrong size for CIFAR file .*data_batch_3\.bin.*3073-byte records"):
        read_dataset("cifar10", tmp_path)
    # the test split alone is still readable
    assert len(read_dataset("cifar10", tmp_path, subset="test")) == 3


def test_cifar10_missing_batch(tmp_path):
    make_cifar10(tmp_path)
    (tmp_path / "data_batch_5.bin").unlink()
    with pytest.raises(DataReadError, match=r"data path not found: .*data_batch_5\.bin"):
        read_dataset("cifar10", tmp_path, subset="train")


def test_cifar100_fine_and_coarse(tmp_path):
    d = tmp_path / "cifar-100-binary"
    d.mkdir()
    train_labels = [[3, 42], [19, 99], [0, 0]]
    test_labels = [[7, 12]]
    tr, tr_px = cifar_records(train_labels, seed=1)
    te, te_px = cifar_records(test_labels, seed=2)
    (d / "train.bin").write_bytes(tr)
    (d / "test.bin").write_bytes(te)
    (d / "fine_label_names.txt").write_text("\n".join(f"fine{i}" for i in range(100)))
    (d / "coarse_label_names.txt").write_text("\n".join(f"coarse{i}" for i in range(20)))

    fine = read_dataset("cifar100", tmp_path)
    assert fine.x.shape == (4, 3, 32, 32)
    np.testing.assert_array_equal(fine.y, [42, 99, 0, 12])
    np.testing.assert_allclose(
        fine.x, np.concatenate([tr_px, te_px]).astype(np.float32) / 255.0, rtol=0, atol=1e-7
    )
    assert len(fine.class_names) == 100 and fine.class_names[42] == "fine42"

    coarse = read_dataset("cifar100", d, label="coarse", subset="train")
    np.testing.assert_array_equal(coarse.y, [3, 19, 0])
    assert coarse.class_names == [f"coarse{i}" for i in range(20)]
    assert coarse.info["label"] == "coarse"

    with pytest.raises(DataReadError, match="invalid label"):
        read_dataset("cifar100", d, label="medium")

    (d / "test.bin").write_bytes(te + b"\x00" * 100)
    with pytest.raises(DataReadError, match=r"wrong size for CIFAR file .*test\.bin.*3074-byte"):
        read_dataset("cifar100", d, subset="test")


# ---------------------------------------------------------------------------
# image folder
# ---------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------
# CSV
# ---------------------------------------------------------------------------


def test_csv_string_labels(tmp_path):
    f = tmp_path / "iris.csv"
    f.write_text(
        "sepal,petal,species,extra\n"
        "5.1,1.4,setosa,0\n"
        "6.3,4.9,versicolor,1\n"
        "\n"
        "7.7,6.7,virginica,2\n"
        "4.9,1.5,setosa,3\n"
    )
    ds = read_dataset("csv", f, label_column="species")
    assert ds.x.dtype == np.float32 and ds.x.shape == (4, 3)
    np.testing.assert_allclose(
        ds.x, [[5.1, 1.4, 0], [6.3, 4.9, 1], [7.7, 6.7, 2], [4.9, 1.5, 3]], rtol=1e-6
    )
    assert ds.class_names == ["setosa", "versicolor", "virginica"]
    np.testing.assert_array_equal(ds.y, [0, 1, 2, 0])
    assert ds.y.dtype == np.int64
    sub = read_dataset("csv", f, label_column="species", feature_columns=["petal"])
    assert sub.x.shape == (4, 1)
    np.testing.assert_allclose(sub.x[:, 0], [1.4, 4.9, 6.7, 1.5], rtol=1e-6)


def test_csv_int_labels_sorted_numerically(tmp_path):
    f = tmp_path / "d.csv"
    f.write_text("a,label\n1,10\n2,2\n3,10\n4,7\n")
    ds = read_dataset("csv", f)
    assert ds.class_names == ["2", "7", "10"]
    np.testing.assert_array_equal(ds.y, [2, 0, 2, 1])


def test_csv_errors(tmp_path):
    f = tmp_path / "bad.csv"
    f.write_text("a,b,label\n1,2,x\n3,oops,y\n")
    with pytest.raises(DataReadError, match=r"bad\.csv, row 3, column 'b': non-numeric value 'oops'"):
        read_dataset("csv", f)
    with pytest.raises(DataReadError, match=r"label column 'target' not found .*columns are: a, b, label"):
        read_dataset("csv", f, label_column="target")
    with pytest.raises(DataReadError, match="feature column.*'zz' not found"):
        read_dataset("csv", f, feature_columns=["a", "zz"])
    g = tmp_path / "short.csv"
    g.write_text("a,label\n1\n")
    with pytest.raises(DataReadError, match="row 2: expected 2 fields, got 1"):
        read_dataset("csv", g)
    e = tmp_path / "empty.csv"
    e.write_text("")
    with pytest.raises(DataReadError, match="empty"):
        read_dataset("csv", e)


# ---------------------------------------------------------------------------
# NPZ
# ---------------------------------------------------------------------------


def test_npz_uint8_images_with_class_names(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(4, 3, 5, 5), dtype=np.uint8)
    y = np.array([0, 2, 1, 2], dtype=np.int32)
    f = tmp_path / "d.npz"
    np.savez(f, images=x, targets=y, class_names=np.array(["a", "b", "c"]))
    ds = read_dataset("npz", f, x_key="images", y_key="targets")
    assert ds.x.shape == (4, 3, 5, 5) and ds.x.dtype == np.float32
    np.testing.assert_allclose(ds.x, x.astype(np.float32) / 255.0, rtol=0, atol=1e-7)
    assert ds.y.dtype == np.int64
    np.testing.assert_array_equal(ds.y, y)
    assert ds.class_names == ["a", "b", "c"]


def test_npz_float_tabular_kept(tmp_path):
    x = np.array([[0.5, 300.0], [-2.0, 1.0], [7.0, 8.0]], dtype=np.float64)
    f = tmp_path / "t.npz"
    np.savez_compressed(f, x=x, y=np.array([1, 0, 1]))
    ds = read_dataset("npz", f)
    np.testing.assert_array_equal(ds.x, x.astype(np.float32))
    assert ds.class_names == ["0", "1"]


def test_npz_hw_gets_channel_axis(tmp_path):
    f = tmp_path / "g.npz"
    np.savez(f, x=np.zeros((2, 4, 4), dtype=np.uint8), y=np.array([0, 1]))
    assert read_dataset("npz", f).x.shape == (2, 1, 4, 4)


def test_npz_object_array_rejected(tmp_path):
    f = tmp_path / "obj.npz"
    obj = np.empty(2, dtype=object)
    obj[0], obj[1] = [1, 2], {"a": 1}
    np.savez(f, x=obj, y=np.array([0, 1]))
    with pytest.raises(DataReadError, match=r"'x' in .*obj\.npz has object dtype.*pickle"):
        read_dataset("npz", f)


def test_npz_errors(tmp_path):
    f = tmp_path / "d.npz"
    np.savez(f, x=np.zeros((3, 2), dtype=np.float32), y=np.array([0, 1]))
    with pytest.raises(DataReadError, match=r"number of samples differs .*\(3\).*\(2\)"):
        read_dataset("npz", f)
    with pytest.raises(DataReadError, match="key 'labels' not found .*keys are: x, y"):
        read_dataset("npz", f, y_key="labels")
    g = tmp_path / "neg.npz"
    np.savez(g, x=np.zeros((2, 2)), y=np.array([0, -1]))
    with pytest.raises(DataReadError, match="non-negative"):
        read_dataset("npz", g)
    h = tmp_path / "garbage.npz"
    h.write_bytes(b"definitely not a zip file")
    with pytest.raises(DataReadError, match=r"garbage\.npz"):
        read_dataset("npz", h)
