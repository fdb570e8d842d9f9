"""``distill.temperature``: absent means the method's own default, refused where a method has none,
and part of a run's fingerprint only where it acts. Non-finite numbers are refused everywhere."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from autokd.cli import app
from autokd.losses import available, create, get_spec
from autokd.spec import SpecError
from autokd.stages import distill_extra, effective_distill, load_pipeline_spec, method_params
from autokd.stages.validate import uses_temperature

runner = CliRunner()


def _spec(tmp_path: Path, text: str):
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    return load_pipeline_spec(path, root=tmp_path)


def _error(tmp_path: Path, text: str) -> str:
    with pytest.raises(SpecError) as err:
        _spec(tmp_path, text)
    return str(err.value)


def test_absent_temperature_reaches_the_method_default(tmp_path):
    spec = _spec(tmp_path, "distill: {method: lskd}\n")
    assert spec.distill.temperature is None
    loss = create("lskd", **method_params(spec.distill))
    assert loss.temperature == 2.0  # lskd's own default, which the old spec default 4.0 always overrode
    assert create("kd", **method_params(_spec(tmp_path, "distill: {method: kd}\n").distill)).temperature == 4.0


def test_given_temperature_is_passed_to_the_method(tmp_path):
    spec = _spec(tmp_path, "distill: {method: lskd, temperature: 3.5}\n")
    assert create("lskd", **method_params(spec.distill)).temperature == 3.5


@pytest.mark.parametrize("method, knob", [("normkd", "distill.params.t_norm"),
                                          ("ctkd", "distill.params.init_temperature"),
                                          ("fitnet", "it has no temperature"),
                                          ("rkd", "it has no temperature")])
def test_temperature_refused_for_a_method_without_one_naming_its_knob(tmp_path, method, knob):
    msg = _error(tmp_path, f"distill:\n  method: {method}\n  temperature: 4\n")
    assert f"{tmp_path / 'spec.yaml'}:3: distill.temperature: expected no temperature for method {method!r}" in msg
    assert knob in msg and "found 4" in msg


def test_every_method_either_takes_the_temperature_or_refuses_it(tmp_path):
    for method in available():
        text = f"distill: {{method: {method}, temperature: 3}}\n"
        if get_spec(method).task == "lm":  # language-model methods: refused by a classification pipeline
            assert "expected a classification method" in _error(tmp_path, text)
        elif uses_temperature(method):
            assert create(method, **method_params(_spec(tmp_path, text).distill)).temperature == 3.0
        else:
            assert "expected no temperature" in _error(tmp_path, text)
            assert "temperature" not in get_spec(method).params.model_fields


def test_fingerprint_holds_the_effective_recipe(tmp_path):
    explicit = _spec(tmp_path, "distill: {method: lskd, temperature: 2.0}\n")
    implicit = _spec(tmp_path, "distill: {method: lskd}\n")
    other = _spec(tmp_path, "distill: {method: lskd, temperature: 8.0}\n")
    assert effective_distill(explicit.distill) == effective_distill(implicit.distill)
    assert distill_extra(explicit, "t") == distill_extra(implicit, "t")
    assert distill_extra(other, "t") != distill_extra(implicit, "t")
    assert effective_distill(other.distill)["params"]["temperature"] == 8.0
    # a method without a temperature has none in its recipe: nothing for an unused knob to change
    assert "temperature" not in effective_distill(_spec(tmp_path, "distill: {method: normkd}\n").distill)["params"]


def test_temperature_in_method_params_is_refused(tmp_path):
    msg = _error(tmp_path, "distill: {method: kd, params: {temperature: 3}}\n")
    assert "distill.params.temperature: expected no temperature here (set distill.temperature)" in msg


@pytest.mark.parametrize("text, where", [
    ("student:\n  train:\n    lr: .nan\n", ":3: student.train.lr: expected a finite number"),
    ("teacher:\n  train:\n    grad_clip: .inf\n", ":3: teacher.train.grad_clip: expected a finite number"),
    ("distill:\n  method: kd\n  temperature: .inf\n", ":3: distill.temperature: expected a finite number"),
    ("distill:\n  method: dkd\n  params:\n    beta: .inf\n", ":4: distill.params.beta: expected a finite number"),
    ("distill:\n  method: normkd\n  params: {t_norm: -.inf}\n", ":3: distill.params.t_norm: expected a finite number"),
])
def test_non_finite_numbers_are_refused_at_the_key_written(tmp_path, text, where):
    assert f"{tmp_path / 'spec.yaml'}{where}" in _error(tmp_path, text)


def test_empty_spec_file_is_refused(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("# nothing but a comment\n")
    res = runner.invoke(app, ["validate", str(path)])
    assert res.exit_code == 2
    assert f"{path}:1: <top level>: expected a spec with at least one section (the file is empty)" in res.output
    assert "Traceback" not in res.output


def test_validate_reports_method_default_temperature(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text("distill: {method: lskd}\n")
    res = runner.invoke(app, ["validate", str(path)])
    assert res.exit_code == 0 and "T=method default" in res.output
