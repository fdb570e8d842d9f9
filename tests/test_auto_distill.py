"""``distill.method: auto``: candidates validated like plain recipes, the winner chosen on the
validation split only, saved like a plain distilled student."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from autokd.data.prepare import load_prepared
from autokd.models.artifact import MODEL_FILE
from autokd.spec import SpecError
from autokd.stages import Layout, distill, effective_distill, load_pipeline_spec, prepare, train_teacher
from autokd.stages.auto import SELECTION_FILE, select_candidate
from autokd.stages.auto_spec import DEFAULT_CANDIDATES, candidate_distills
from autokd.stages.recipe import setup

TINY = """
name: tiny
data: {{source: digits, max_samples: 200, seed: 0}}
teacher:
  model: {{name: mlp, params: {{hidden: [32]}}}}
  train: {{epochs: 2, batch_size: 64, lr: 0.01, seed: 0}}
student:
  model: {{name: mlp, params: {{hidden: [8]}}}}
  train: {{epochs: 1, batch_size: 64, lr: 0.01, seed: 0}}
distill: {distill}
runtime: {{device: cpu, num_threads: 1}}
"""

CANDS = "{method: auto, alpha: 0.5, params: {candidates: [{method: kd, temperature: 2.0}, {method: normkd, alpha: 0.9}]}}"


def _spec(tmp_path: Path, distill: str):
    path = tmp_path / "spec.yaml"
    path.write_text(TINY.format(distill=distill))
    return load_pipeline_spec(path, root=tmp_path)


def _error(tmp_path: Path, distill: str) -> str:
    with pytest.raises(SpecError) as err:
        _spec(tmp_path, distill)
    return str(err.value)


def test_auto_without_candidates_uses_the_built_in_list(tmp_path):
    spec = _spec(tmp_path, "{method: auto}")
    cands = candidate_distills(spec.distill)
    assert [c.method for c in cands] == [c["method"] for c in DEFAULT_CANDIDATES]
    eff = effective_distill(spec.distill)
    assert eff["method"] == "auto" and [c["method"] for c in eff["candidates"]] == [c.method for c in cands]


def test_candidate_alpha_defaults_to_distill_alpha_and_temperature_to_the_method(tmp_path):
    spec = _spec(tmp_path, CANDS)
    kd, normkd = candidate_distills(spec.distill)
    assert (kd.method, kd.temperature, kd.alpha) == ("kd", 2.0, 0.5)
    assert (normkd.method, normkd.temperature, normkd.alpha) == ("normkd", None, 0.9)
    eff = effective_distill(spec.distill)["candidates"]
    assert eff[0]["params"]["temperature"] == 2.0 and eff[1]["params"]["t_norm"] == 1.0


@pytest.mark.parametrize("distill, where", [
    ("{method: auto, temperature: 4.0}", "distill.temperature"),
    ("{method: auto, params: {candidates: [{method: kdd}]}}", "distill.params.candidates[0].method"),
    ("{method: auto, params: {candidates: [{method: normkd, temperature: 2.0}]}}",
     "distill.params.candidates[0].temperature"),
    ("{method: auto, params: {candidates: [{method: dkd, params: {betta: 2}}]}}",
     "distill.params.candidates[0].params.betta"),
    ("{method: auto, params: {candidates: []}}", "distill.params.candidates"),
    ("{method: auto, params: {candidates: [{method: auto}]}}", "distill.params.candidates[0].method"),
    ("{method: auto, params: {candidate: []}}", "distill.params.candidate"),
])
def test_bad_auto_specs_are_refused_at_the_key(tmp_path, distill, where):
    assert where in _error(tmp_path, distill)


class _NoTest:
    """Prepared data whose test split raises on access: selection must not read it."""

    def __init__(self, data):
        self._data = data
        self.train, self.val, self.meta = data.train, data.val, data.meta
        self.num_classes, self.input_shape, self.sha256 = data.num_classes, data.input_shape, data.sha256

    @property
    def test(self):
        raise AssertionError("the auto selection read the test split")


def _prepared(tmp_path: Path, distill: str):
    spec = _spec(tmp_path, distill)
    layout = Layout(tmp_path / "run")
    prepare(spec, layout)
    train_teacher(spec, layout, progress=False)
    return spec, layout


def test_selection_reads_only_train_and_val_and_keeps_the_best_val_accuracy(tmp_path):
    spec, layout = _prepared(tmp_path, CANDS)
    data = _NoTest(load_prepared(layout.data))
    with pytest.raises(AssertionError, match="test split"):
        data.test  # noqa: B018  (the guard itself works)
    device, amp = setup(spec)
    sel = select_candidate(spec, layout, data, device, amp, "0" * 64, progress=False, log=lambda _: None)
    accs = [row["val_accuracy"] for row in sel.table]
    assert len(sel.table) == 2 and sel.index == accs.index(max(accs))  # the first of the best
    assert sel.result.final["val_accuracy"] == sel.table[sel.index]["val_accuracy"]
    assert sel.spec.distill.method == ["kd", "normkd"][sel.index]


@pytest.mark.slow
def test_auto_stage_saves_the_winner_as_a_plain_distill_would(tmp_path):
    spec, layout = _prepared(tmp_path, CANDS)
    distill(spec, layout, progress=False)
    out = layout.model_dir("student")
    sel = json.loads((out / SELECTION_FILE).read_text())
    manifest = json.loads((out / "manifest.json").read_text())
    chosen = sel["candidates"][sel["selected"]]
    assert manifest["spec"]["selected"] == sel["recipe"] and manifest["spec"]["distill"]["method"] == "auto"
    assert manifest["metrics"]["val_accuracy"] == pytest.approx(chosen["val_accuracy"])
    # the same recipe written out plainly trains the same student (same seed, batches, fingerprint)
    from safetensors.torch import load_file

    auto_weights = load_file(out / MODEL_FILE)
    win = sel["recipe"]
    plain = {"method": win["method"], "alpha": win["alpha"], "params": {k: v for k, v in win["params"].items()
                                                                         if k != "temperature"}}
    if "temperature" in win["params"]:
        plain["temperature"] = win["params"]["temperature"]
    plain_spec = spec.model_copy(update={"distill": spec.distill.model_validate(plain)})
    layout2 = Layout(tmp_path / "plain")
    prepare(plain_spec, layout2)
    train_teacher(plain_spec, layout2, progress=False)
    distill(plain_spec, layout2, progress=False)
    plain_weights = load_file(layout2.model_dir("student") / MODEL_FILE)
    assert auto_weights.keys() == plain_weights.keys()
    assert all(torch.equal(auto_weights[k], plain_weights[k]) for k in auto_weights)


def test_outside_the_distill_stage_auto_stands_for_its_first_candidate(tmp_path):
    from autokd.stages.recipe import resolve_auto, teacher_mode

    spec = _spec(tmp_path, CANDS)
    first = resolve_auto(spec).distill
    assert (first.method, first.temperature, first.alpha) == ("kd", 2.0, 0.5)
    assert teacher_mode(spec) == "cache"
    plain = _spec(tmp_path, "{method: lskd}")
    assert resolve_auto(plain) is plain
