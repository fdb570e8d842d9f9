"""One trial in this process: the teacher cache, the live teacher for feature methods, NaN,
and the same student and accuracy as the pipeline's own distill + evaluate stages."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from autokd.search.hparams.run import prepare_context
from autokd.search.hparams.spec import load_search_spec
from autokd.search.hparams.trial import LocalReporter, TrialFailed, run_trial, trial_spec

from hparams_support import copy_inputs, tiny_search, write_pipeline, write_search


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    root = tmp_path_factory.mktemp("root")
    pipeline = write_pipeline(root)
    loaded = load_search_spec(write_search(root, tiny_search(pipeline, root)), base_dir=root)
    lines = []
    context = prepare_context(loaded, log=lines.append)  # prepares data and the teacher once
    assert any("running train_teacher once" in ln for ln in lines)
    assert (root / "artifacts" / "teacher_outputs" / "train_logits.safetensors").exists()
    return context


def _params(method="kd", **kw):
    p = {"distill.temperature": 4.0, "distill.alpha": 0.9, "distill.method": method}
    if method == "dkd":
        p["distill.params.beta@dkd"] = 2.0
    p.update(kw)
    return p


def test_inputs_are_made_once(ctx):
    lines = []
    again = prepare_context(load_search_spec(ctx.root + "/search.yaml", base_dir=ctx.root), log=lines.append)
    assert lines == [] and again.inputs == ctx.inputs


@pytest.mark.parametrize("method", ["kd", "dkd"])
def test_logit_methods_read_the_cache_and_never_run_the_teacher(ctx, tmp_path, method):
    rep = LocalReporter(tmp_path)
    final = run_trial(_params(method), ctx, rep)
    assert len(rep.reports) == 3 and [r["epoch"] for r in rep.reports] == [1, 2, 3]
    assert all(r["teacher_calls"] == 0 and r["teacher_mode"] == "cache" for r in rep.reports)
    assert 0.0 <= final["val_accuracy"] <= 1.0 and 0.0 <= final["test_accuracy"] <= 1.0
    assert final["params"] > 0 and final["latency_ms"] > 0


def test_feature_method_runs_the_teacher_live_without_gradients(ctx, tmp_path):
    from autokd.data.prepare import load_prepared
    from autokd.stages import Layout
    from autokd.search.hparams.classify_task import build_trial

    rep = LocalReporter(tmp_path)
    run_trial(_params("fitnet"), ctx, rep)
    assert rep.reports[-1]["teacher_mode"] == "live" and rep.reports[-1]["teacher_calls"] > 0
    spec, _ = trial_spec(_params("fitnet"), ctx)
    layout = Layout(Path(ctx.root))
    _, objective, _ = build_trial(spec, load_prepared(layout.data), layout, torch.device("cpu"))
    assert objective.cache is None and all(not p.requires_grad for p in objective.teacher.parameters())


def test_live_teacher_outputs_run_the_teacher_for_logit_methods(ctx, tmp_path):
    live = type(ctx)(**{**ctx.__dict__, "base": {**ctx.base, "distill": {**ctx.base["distill"],
                                                                           "teacher_outputs": "live"}}})
    rep = LocalReporter(tmp_path)
    run_trial(_params("kd"), live, rep)
    assert rep.reports[-1]["teacher_mode"] == "live" and rep.reports[-1]["teacher_calls"] > 0


def test_non_finite_loss_fails_with_its_reason(ctx, tmp_path):
    with pytest.raises(TrialFailed) as err:
        run_trial(_params("kd", **{"distill.temperature": 1e-40}), ctx, LocalReporter(tmp_path))
    assert "non-finite loss" in err.value.reason and "epoch 1" in err.value.reason


def test_trial_matches_the_pipeline_stages(ctx, tmp_path):
    """The trial's student is the one `distill` trains: same val history, same test accuracy."""
    import json

    from autokd.spec.document import apply_overrides
    from autokd.stages import Layout, distill, evaluate, train_baseline, validate_pipeline

    params = _params("dkd", **{"distill.temperature": 2.5, "distill.alpha": 0.6})
    rep = LocalReporter(tmp_path / "ckpt")
    final = run_trial(params, ctx, rep)
    root = tmp_path / "stage_root"
    copy_inputs(Path(ctx.root), root)
    spec = validate_pipeline(apply_overrides(ctx.base, ctx.space.to_overrides(params)), root=root)
    layout = Layout(root)
    train_baseline(spec, layout, progress=False)
    distill(spec, layout, progress=False)
    metrics = evaluate(spec, layout)
    history = json.loads((layout.model_dir("student") / "history.json").read_text())
    assert [h["val_accuracy"] for h in history] == [r["val_accuracy"] for r in rep.reports]
    assert metrics["student"]["accuracy"] == final["test_accuracy"]
