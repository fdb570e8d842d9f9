"""Spec validation: messages name the file, the key path, what was expected and found."""

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from autokd.cli import app
from autokd.spec import PipelineSpec, SpecError, apply_overrides
from autokd.stages import load_pipeline_spec

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()


def _write(tmp_path, text, name="spec.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def _error(tmp_path, text) -> str:
    p = _write(tmp_path, text)
    with pytest.raises(SpecError) as err:
        load_pipeline_spec(p, root=tmp_path)
    msg = str(err.value)
    assert str(p) in msg
    return msg


def test_default_spec_is_valid():
    spec = load_pipeline_spec(REPO / "pipelines" / "default.yaml", root=REPO)
    assert spec.distill.method == "auto" and spec.data.source == "digits"


def test_negative_temperature(tmp_path):
    msg = _error(tmp_path, "distill:\n  method: kd\n  temperature: -1\n")
    assert "distill.temperature: expected a number greater than 0, found -1" in msg
    assert ":3:" in msg  # the line of the key


def test_unknown_method_suggests_nearest(tmp_path):
    msg = _error(tmp_path, "distill: {method: dkdd}\n")
    assert "distill.method" in msg and "'dkdd'" in msg and "did you mean 'dkd'?" in msg


def test_unknown_key_suggests_nearest(tmp_path):
    msg = _error(tmp_path, "distill: {temperture: 2}\n")
    assert "distill.temperture" in msg and "unknown key 'temperture'" in msg
    assert "did you mean 'temperature'?" in msg


def test_type_error(tmp_path):
    msg = _error(tmp_path, "teacher: {train: {epochs: ten}}\n")
    assert "teacher.train.epochs: expected an integer, found 'ten'" in msg


def test_missing_data_path(tmp_path):
    msg = _error(tmp_path, "data: {source: csv, path: nowhere.csv}\n")
    assert "data.path: expected an existing file or folder, found 'nowhere.csv'" in msg


def test_unknown_model_family_and_bad_model_params(tmp_path):
    msg = _error(tmp_path, "student: {model: {name: cnm}}\nteacher: {model: {name: cnn, params: {widths: [0]}}}\n")
    assert "student.model.name" in msg and "did you mean 'cnn'?" in msg
    assert "teacher.model.params.widths[0]: expected a number greater than 0, found 0" in msg


def test_unknown_method_param(tmp_path):
    msg = _error(tmp_path, "distill: {method: kd, params: {tempreture: 3}}\n")
    assert "distill.params.tempreture" in msg


def test_cache_with_augmentation_is_rejected(tmp_path):
    msg = _error(tmp_path, "student: {train: {augment: {enabled: true}}}\ndistill: {teacher_outputs: cache}\n")
    assert "distill.teacher_outputs" in msg and "augment" in msg


def test_split_must_sum_to_one(tmp_path):
    msg = _error(tmp_path, "data: {split: {train: 0.5, val: 0.2, test: 0.2}}\n")
    assert "data.split" in msg and "sum to 1" in msg


def test_invalid_yaml_names_line(tmp_path):
    msg = _error(tmp_path, "name: x\ndistill:\n  method: [kd\n  alpha: 0.5\n")
    # the parser stops at the first token that cannot continue the unclosed flow sequence (line 4)
    assert f"{tmp_path / 'spec.yaml'}:4: <top level>: expected valid YAML" in msg


def test_validation_error_names_the_line_of_the_key(tmp_path):
    msg = _error(tmp_path, "name: x\n\nstudent:\n  train:\n    epochs: ten\n")
    assert f"{tmp_path / 'spec.yaml'}:5: student.train.epochs: expected an integer, found 'ten'" in msg


def test_overrides_are_validated(tmp_path):
    p = _write(tmp_path, "distill: {method: kd}\n")
    spec = load_pipeline_spec(p, overrides={"distill.temperature": 8}, root=tmp_path)
    assert spec.distill.temperature == 8
    with pytest.raises(SpecError, match="distill.alpha"):
        load_pipeline_spec(p, overrides={"distill.alpha": 2}, root=tmp_path)
    assert apply_overrides({"a": {"b": 1}}, {"a.c": 2}) == {"a": {"b": 1, "c": 2}}


def test_cli_validate_ok_and_error_exit_code(tmp_path):
    ok = runner.invoke(app, ["validate", str(REPO / "pipelines" / "default.yaml")])
    assert ok.exit_code == 0 and "ok" in ok.output
    bad = _write(tmp_path, "distill: {method: kd, temperature: -2}\n")
    res = runner.invoke(app, ["validate", str(bad)])
    assert res.exit_code == 2
    assert "distill.temperature" in res.output and "Traceback" not in res.output


def test_every_pipeline_spec_in_repo_validates():
    from autokd.spec.chain import ChainSpec, is_chain_spec
    from autokd.spec.document import load_yaml
    from autokd.stages.validate import load_chain_spec

    from autokd.spec.lm import LMPipelineSpec, is_lm_spec
    from autokd.stages.lm_validate import load_lm_spec

    for path in sorted((REPO / "pipelines").glob("*.yaml")):
        if is_chain_spec(load_yaml(path)):  # multi-stage pipelines (takd, born_again, blockwise)
            assert isinstance(load_chain_spec(path, root=REPO), ChainSpec), path
        elif is_lm_spec(load_yaml(path)):  # the language-model pipeline
            assert isinstance(load_lm_spec(path, root=REPO), LMPipelineSpec), path
        else:
            assert isinstance(load_pipeline_spec(path, root=REPO), PipelineSpec), path
