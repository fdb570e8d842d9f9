"""The ``digits`` reader (:mod:`autokd.data.readers.builtin`): scikit-learn's bundled data."""

from __future__ import annotations

import numpy as np

from autokd.data.readers import RawDataset, read_dataset


def test_digits():
    ds = read_dataset("digits", None)
    assert isinstance(ds, RawDataset)
    assert ds.x.shape == (1797, 1, 8, 8) and ds.x.dtype == np.float32
    assert ds.y.shape == (1797,) and ds.y.dtype == np.int64
    assert ds.class_names == [str(i) for i in range(10)]
    assert set(np.unique(ds.y).tolist()) == set(range(10))
    assert ds.x.min() >= 0.0 and ds.x.max() <= 1.0 and ds.x.max() == 1.0
