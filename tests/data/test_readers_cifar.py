"""The ``cifar10`` / ``cifar100`` readers (:mod:`autokd.data.readers.cifar`): real binary
records written into ``tmp_path``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from autokd.data.readers import DataReadError, read_dataset


def cifar_records(labels: list[list[int]], seed: int) -> tuple[bytes, np.ndarray]:
    """CIFAR binary records: label byte(s) followed by 3072 channel-major pixel bytes."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(len(labels), 3, 32, 32), dtype=np.uint8)
    out = bytearray()
    for lab, px in zip(labels, pixels):
        out += bytes(lab) + px.tobytes()
    return bytes(out), pixels


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
