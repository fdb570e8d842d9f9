"""A real two-node Ray cluster on loopback (head + worker, 1 CPU each): the worker is removed
while a trial runs on it; the trial is retried from its checkpoint on the head and the search
completes with every trial recorded (slow)."""

from __future__ import annotations

import os
import threading
import time

import pytest

from autokd.search.hparams.progress import SearchProgress
from autokd.search.hparams.run import run_search

from hparams_support import tiny_search, write_pipeline, write_search

ray = pytest.importorskip("ray")


@pytest.mark.slow
def test_search_survives_losing_a_worker_node(tmp_path):
    from ray.cluster_utils import Cluster

    from autokd.search.hparams.ray_backend import configure_environment, short_temp_dir, start_ray

    if ray.is_initialized():
        ray.shutdown()
    configure_environment()
    from ray._common.utils import get_default_ray_temp_dir

    os.makedirs(get_default_ray_temp_dir(), exist_ok=True)  # where Cluster writes the address file
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "include_dashboard": False, "temp_dir": short_temp_dir()})
    worker = cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    head_id, worker_id = cluster.head_node.node_id[:12], worker.node_id[:12]
    try:
        start_ray(address=cluster.address)
        write_pipeline(tmp_path, **{"student.train.epochs": 30})
        doc = tiny_search(tmp_path / "tiny.yaml", tmp_path, name="cluster", max_failures=2,
                          budget={"trials": 4, "max_concurrent": 2}, scheduler={"type": "fifo"})
        spec = write_search(tmp_path, doc)
        progress = SearchProgress(4, live=False, echo=lambda _: None)
        box: dict = {}

        def search():
            try:
                box["outcome"] = run_search(spec, address=cluster.address, out_dir=tmp_path / "out",
                                            base_dir=tmp_path, progress=progress, log=lambda _: None)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread
                box["error"] = exc

        thread = threading.Thread(target=search, daemon=True)
        thread.start()
        removed_during = None
        deadline = time.time() + 120
        while thread.is_alive() and time.time() < deadline:
            running = [t for t, r in list(progress.rows.items())
                       if r.get("status") == "running" and r.get("node") == worker_id and (r.get("epoch") or 0) >= 3]
            if running:
                removed_during = running[0]
                cluster.remove_node(worker)  # from the main thread, as Ray requires
                break
            time.sleep(0.05)
        thread.join(timeout=180)
        assert not thread.is_alive(), "search did not finish"
        assert "error" not in box, box.get("error")
        assert removed_during is not None, "no trial ran on the worker node"
        outcome = box["outcome"]
        assert len(outcome.records) == 4
        assert all(r.status == "completed" and r.epochs == 30 for r in outcome.records), \
            [(r.trial, r.status, r.reason) for r in outcome.records]
        moved = next(r for r in outcome.records if r.trial == removed_during)
        assert worker_id in moved.nodes and moved.node == head_id  # finished on the head
    finally:
        ray.shutdown()
        cluster.shutdown()


@pytest.mark.slow
def test_search_of_two_worker_trials_on_two_nodes(tmp_path):
    """2 trials of 2 Ray Train workers each on a head and a worker node of 1 CPU each: a trial holds
    both CPUs (its process a sliver of them), so the trials run one after the other instead of
    waiting on each other for ever, and both complete every epoch."""
    from ray.cluster_utils import Cluster

    from autokd.search.hparams.ray_backend import configure_environment, short_temp_dir, start_ray

    if ray.is_initialized():
        ray.shutdown()
    configure_environment()
    from ray._common.utils import get_default_ray_temp_dir

    os.makedirs(get_default_ray_temp_dir(), exist_ok=True)
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "include_dashboard": False, "temp_dir": short_temp_dir()})
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    try:
        start_ray(address=cluster.address)
        # each epoch starts a worker group: 2 suffice; the workers (on either node) keep their checkpoints
        # in folders of their own and exchange them through runtime.storage
        store = tmp_path / "store"
        write_pipeline(tmp_path, **{"student.train.epochs": 2, "runtime.storage": f"file://{store}"})
        doc = tiny_search(tmp_path / "tiny.yaml", tmp_path, name="workers", scheduler={"type": "fifo"},
                          budget={"trials": 2, "resources": {"workers": 2, "cpu_per_worker": 1}})
        outcome = run_search(write_search(tmp_path, doc), address=cluster.address, out_dir=tmp_path / "out",
                             base_dir=tmp_path, progress=SearchProgress(2, live=False, echo=lambda _: None),
                             log=lambda _: None)
        assert len(outcome.records) == 2
        assert all(r.status == "completed" and r.epochs == 2 for r in outcome.records), \
            [(r.trial, r.status, r.reason) for r in outcome.records]
        assert all(0.0 <= r.final["val_accuracy"] <= 1.0 for r in outcome.records)
        runs = [p for p in store.iterdir() if p.name.startswith("trial-")]
        assert len(runs) == 2 and all((p / "last.safetensors").is_file() for p in runs), list(store.iterdir())
        # too big a trial for the cluster is refused before anything runs
        big = tiny_search(tmp_path / "tiny.yaml", tmp_path, name="big",
                          budget={"trials": 1, "resources": {"workers": 3, "cpu_per_worker": 1}})
        from autokd.search.hparams.errors import SearchError

        with pytest.raises(SearchError, match="3 workers"):
            run_search(write_search(tmp_path, big, "big.yaml"), address=cluster.address, out_dir=tmp_path / "big",
                       base_dir=tmp_path, progress=SearchProgress(1, live=False, echo=lambda _: None),
                       log=lambda _: None)
    finally:
        ray.shutdown()
        cluster.shutdown()
