"""``runtime.storage`` (:mod:`autokd.train.storage`): a run's checkpoint files through a folder or a
pyarrow filesystem URI, for workers on nodes that share no filesystem."""

from __future__ import annotations

import pytest

from autokd.train.storage import RunStorage


@pytest.mark.parametrize("as_uri", [False, True])
def test_run_files_travel_through_the_storage(tmp_path, as_uri):
    store_dir = tmp_path / "store"
    uri = f"file://{store_dir}" if as_uri else str(store_dir)
    node_a, node_b = tmp_path / "a", tmp_path / "b"
    node_a.mkdir()
    (node_a / "last.safetensors").write_bytes(b"epoch 1")
    (node_a / "worker_failure.1.json").write_text('{"rank": 1}')
    (node_a / "notes.txt").write_text("not a run file")
    store = RunStorage(uri, "teacher-abc123")
    assert store.upload(node_a) == ["last.safetensors", "worker_failure.1.json"]
    assert sorted(p.name for p in (store_dir / "teacher-abc123").iterdir()) == ["last.safetensors",
                                                                               "worker_failure.1.json"]
    # another node's folder receives them (the run's files and the failure records)
    assert sorted(store.download(node_b)) == ["last.safetensors", "worker_failure.1.json"]
    assert (node_b / "last.safetensors").read_bytes() == b"epoch 1"
    # the driver's start never replaces what the workers wrote since
    (node_a / "last.safetensors").write_bytes(b"epoch 0, older")
    assert store.upload(node_a, ["last.safetensors"], missing_only=True) == []
    assert (store_dir / "teacher-abc123" / "last.safetensors").read_bytes() == b"epoch 1"
    store.clear_failures()
    assert store.download(tmp_path / "c") == ["last.safetensors"]
    assert not list((store_dir / "teacher-abc123").glob(".*.tmp"))  # nothing half-written left
