"""The reader registry and what every reader shares (:mod:`autokd.data.readers.base`):
unknown sources and options, missing paths, and no torch in the package."""

from __future__ import annotations

import subprocess
import sys

import pytest

from autokd.data.readers import READERS, DataReadError, read_dataset


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


def test_readers_package_does_not_import_torch():
    """The readers package needs only numpy/Pillow/stdlib: loaded on its own (under another
    name, so ``autokd/__init__`` and ``autokd/data/__init__`` do not run) it pulls in neither
    torch nor any other part of autokd, and still registers every reader."""
    import autokd.data.readers as pkg

    code = (
        "import importlib.util, sys; "
        f"spec = importlib.util.spec_from_file_location('_readers_only', {pkg.__file__!r}); "
        "m = importlib.util.module_from_spec(spec); sys.modules['_readers_only'] = m; "
        "spec.loader.exec_module(m); "
        "bad = [n for n in ('torch', 'torchvision', 'autokd') if n in sys.modules]; "
        "assert not bad, bad; "
        "assert sorted(m.READERS) == ['cifar10', 'cifar100', 'csv', 'digits', 'image_folder', "
        "'mnist_idx', 'npz'], sorted(m.READERS)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
