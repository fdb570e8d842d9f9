"""Multi-worker search trials (``budget.resources.workers``): a trial on 2 Ray Train workers
reports every epoch with the values of the same trial in one process (slow: real Ray)."""

from __future__ import annotations

import pytest

from autokd.search.hparams.run import prepare_context
from autokd.search.hparams.spec import load_search_spec
from autokd.search.hparams.trial import LocalReporter, run_trial

from hparams_support import tiny_search, write_pipeline, write_search

ray = pytest.importorskip("ray")


def test_worker_resources_of_a_trial(tmp_path):
    from autokd.spec.errors import SpecError

    pipeline = write_pipeline(tmp_path)
    ok = tiny_search(pipeline, tmp_path, budget={"resources": {"workers": 2, "cpu_per_worker": 1.5}})
    res = load_search_spec(write_search(tmp_path, ok), base_dir=tmp_path).spec.budget.resources
    assert res.trial_cpus == 3.0 and res.gpu_per_worker == 0.0
    assert load_search_spec(write_search(tmp_path, tiny_search(pipeline, tmp_path)),
                            base_dir=tmp_path).spec.budget.resources.trial_cpus == 1.0  # one process: cpu
    bad = tiny_search(pipeline, tmp_path, budget={"resources": {"workers": 2, "cpu_per_worker": 0.01}})
    with pytest.raises(SpecError) as err:
        load_search_spec(write_search(tmp_path, bad), base_dir=tmp_path)
    assert "budget.resources.cpu_per_worker" in str(err.value) and "0.1" in str(err.value)
    sharded = tiny_search(pipeline, tmp_path, budget={"resources": {"workers": 2, "strategy": "fsdp"}})
    assert load_search_spec(write_search(tmp_path, sharded), base_dir=tmp_path).spec.budget.resources.strategy == "fsdp"
    alone = tiny_search(pipeline, tmp_path, budget={"resources": {"strategy": "fsdp"}})
    with pytest.raises(SpecError) as err:
        load_search_spec(write_search(tmp_path, alone), base_dir=tmp_path)
    assert "budget.resources" in str(err.value) and "workers is 1" in str(err.value)


@pytest.mark.slow
def test_two_worker_trial_reports_each_epoch_as_one_process(tmp_path):
    """Same spec, seed and global batch: 2 gloo workers each on half of every batch give the
    one-process trial's validation and test metrics at every epoch, up to float32 summation order
    (1e-5; ``tests/test_distributed.py`` pins the weights to 1e-12 in float64)."""
    root = tmp_path / "root"
    root.mkdir()
    pipeline = write_pipeline(root)
    doc = tiny_search(pipeline, root, budget={"trials": 1, "resources": {"workers": 2, "cpu_per_worker": 1}})
    ctx = prepare_context(load_search_spec(write_search(root, doc), base_dir=root), log=lambda _: None)
    assert (ctx.workers, ctx.cpu_per_worker) == (2, 1.0)
    one = type(ctx)(**{**ctx.__dict__, "workers": 1})
    params = {"distill.temperature": 4.0, "distill.alpha": 0.9, "distill.method": "kd"}
    try:
        solo, duo = LocalReporter(tmp_path / "solo"), LocalReporter(tmp_path / "duo")
        run_trial(params, one, solo)
        run_trial(params, ctx, duo)
        assert [r["epoch"] for r in duo.reports] == [1, 2, 3] == [r["epoch"] for r in solo.reports]
        for a, b in zip(solo.reports, duo.reports):
            for key in ("train_loss", "val_loss", "val_accuracy", "test_accuracy"):
                assert b[key] == pytest.approx(a[key], abs=1e-5), (key, a[key], b[key])
        assert "teacher_calls" not in duo.reports[-1] and solo.reports[-1]["teacher_calls"] == 0
        # a retried trial resumes from the epoch checkpoint: nothing left to run, nothing re-reported
        again = LocalReporter(tmp_path / "duo")
        final = run_trial(params, ctx, again)
        assert again.reports == [] and final == {}
    finally:
        ray.shutdown()
