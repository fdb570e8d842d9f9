"""The ``csv`` and ``npz`` readers (:mod:`autokd.data.readers.tabular`): real files written
into ``tmp_path``."""

from __future__ import annotations

import numpy as np
import pytest

from autokd.data.readers import DataReadError, read_dataset


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


def test_csv_int_label_spellings_and_huge_ints(tmp_path):
    """Integer labels are compared as numbers: ``07`` and ``7`` are one class named ``7``,
    negatives sort first, and labels beyond int64 still sort numerically."""
    f = tmp_path / "spellings.csv"
    f.write_text("a,label\n1,07\n2,-3\n3,7\n4,10\n")
    ds = read_dataset("csv", f)
    assert ds.class_names == ["-3", "7", "10"]
    np.testing.assert_array_equal(ds.y, [1, 0, 1, 2])
    huge = 2**70
    g = tmp_path / "huge.csv"
    g.write_text(f"a,label\n1,{huge}\n2,5\n3,{huge + 1}\n4,5\n")
    ds = read_dataset("csv", g)
    assert ds.class_names == ["5", str(huge), str(huge + 1)]
    np.testing.assert_array_equal(ds.y, [1, 0, 2, 0])


def test_csv_mixed_labels_sort_as_strings(tmp_path):
    """One non-integer label makes every label a string: ``"10" < "9" < "b"`` by code point."""
    f = tmp_path / "mixed.csv"
    f.write_text("a,label\n1,9\n2,b\n3,10\n4,9\n5,B\n")
    ds = read_dataset("csv", f)
    assert ds.class_names == ["10", "9", "B", "b"]
    np.testing.assert_array_equal(ds.y, [1, 3, 0, 1, 2])


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
