"""Search spec validation: key paths, the pipeline it names, conditional dimensions, shortlists."""

from __future__ import annotations

import pytest
import yaml

from autokd.search.hparams.spec import load_search_spec
from autokd.spec.errors import SpecError

from hparams_support import REPO, tiny_search, write_pipeline, write_search


@pytest.fixture
def pipeline(tmp_path):
    return write_pipeline(tmp_path)


def _error(tmp_path, doc) -> str:
    path = write_search(tmp_path, doc)
    with pytest.raises(SpecError) as err:
        load_search_spec(path, base_dir=tmp_path)
    msg = str(err.value)
    assert str(path) in msg
    return msg


def test_default_search_space_is_valid():
    loaded = load_search_spec(REPO / "search_spaces" / "default.yaml", base_dir=REPO)
    assert loaded.spec.scheduler_type == "asha" and loaded.spec.sampler_type == "tpe"
    assert set(loaded.spec.space) >= {"distill.temperature", "distill.alpha", "distill.method", "student.model"}
    assert loaded.choices["student.model"][0]["name"] == "cnn"


def test_tiny_spec_is_valid(tmp_path, pipeline):
    loaded = load_search_spec(write_search(tmp_path, tiny_search(pipeline, tmp_path)), base_dir=tmp_path)
    assert loaded.pipeline_file == pipeline.resolve()
    assert loaded.choices["distill.method"] == ["kd", "dkd", "fitnet"]


def test_unknown_key_and_bad_range(tmp_path, pipeline):
    doc = tiny_search(pipeline, tmp_path, budjet={"trials": 3})
    doc["space"]["distill.temperature"] = {"type": "loguniform", "low": 8.0, "high": 2.0}
    msg = _error(tmp_path, doc)
    assert "budjet" in msg and "did you mean 'budget'?" in msg
    assert "space.distill.temperature.loguniform" in msg and "low < high" in msg


def test_unknown_dimension_type(tmp_path, pipeline):
    doc = tiny_search(pipeline, tmp_path)
    doc["space"]["distill.alpha"] = {"type": "normal", "low": 0, "high": 1}
    assert "space.distill.alpha" in _error(tmp_path, doc)


def test_dimension_must_be_a_pipeline_path(tmp_path, pipeline):
    doc = tiny_search(pipeline, tmp_path)
    doc["space"]["distill.temprature"] = {"type": "uniform", "low": 1, "high": 2}
    doc["space"]["data.seed"] = {"type": "int", "low": 0, "high": 3}
    msg = _error(tmp_path, doc)
    assert "space.distill.temprature" in msg and "did you mean 'temperature'?" in msg
    assert "space.data.seed" in msg and "student.* or distill.*" in msg


def test_values_that_break_the_pipeline_are_named(tmp_path, pipeline):
    doc = tiny_search(pipeline, tmp_path)
    doc["space"]["distill.alpha"] = {"type": "uniform", "low": 0.5, "high": 1.5}
    doc["space"]["distill.method"]["conditional"]["dkd"]["distill.params.betta"] = 2.0
    msg = _error(tmp_path, doc)
    assert "space.distill.alpha: expected value 1.5 to give a valid pipeline spec" in msg
    assert "distill.alpha: expected a number less than or equal to 1" in msg
    assert "space.distill.method.conditional.dkd.distill.params.betta" in msg


def test_conditional_only_on_method_and_for_listed_methods(tmp_path, pipeline):
    doc = tiny_search(pipeline, tmp_path)
    doc["space"]["distill.method"]["conditional"]["ctkd"] = {"distill.params.lambda_max": 0.5}
    doc["space"]["student.train.lr"] = {"type": "choice", "values": [0.01],
                                        "conditional": {"kd": {"distill.params.x": 1}}}
    msg = _error(tmp_path, doc)
    assert "space.distill.method.conditional.ctkd: expected one of the choice's values" in msg
    assert "space.student.train.lr.conditional: expected conditional parameters only on distill.method" in msg


def test_test_accuracy_is_not_searchable_and_asha_needs_one_objective(tmp_path, pipeline):
    doc = tiny_search(pipeline, tmp_path, objectives={"student.test_accuracy": "max", "student.params": "min"})
    msg = _error(tmp_path, doc)
    assert "objectives.student.test_accuracy" in msg and "never searched on" in msg
    assert "scheduler.type: expected fifo or auto for several objectives" in msg


def test_grid_needs_choices(tmp_path, pipeline):
    doc = tiny_search(pipeline, tmp_path, sampler={"type": "grid"})
    msg = _error(tmp_path, doc)
    assert "space.distill.temperature.type: expected choice" in msg
    assert "space.distill.method.conditional.dkd.distill.params.beta" in msg


def test_student_shortlist_file(tmp_path, pipeline):
    shortlist = tmp_path / "searches" / "students" / "shortlist.yaml"
    shortlist.parent.mkdir(parents=True)
    shortlist.write_text(yaml.safe_dump([{"name": "mlp", "params": {"hidden": [8]}},
                                         {"name": "cnn", "params": {"stem_width": 2, "depths": [1], "widths": [4]}}]))
    doc = tiny_search(pipeline, tmp_path)
    doc["space"]["student.model"] = {"type": "choice", "shortlist": "searches/students/shortlist.yaml"}
    loaded = load_search_spec(write_search(tmp_path, doc), base_dir=tmp_path)
    assert [m["name"] for m in loaded.choices["student.model"]] == ["mlp", "cnn"]

    shortlist.write_text(yaml.safe_dump([{"name": "mlp", "params": {"hiden": [8]}}]))
    with pytest.raises(SpecError) as err:
        load_search_spec(write_search(tmp_path, doc), base_dir=tmp_path)
    assert "hiden" in str(err.value) and "student.model" in str(err.value)

    doc["space"]["student.model"] = {"type": "choice", "shortlist": "searches/nope/shortlist.yaml"}
    assert "space.student.model.shortlist: expected an existing shortlist file" in _error(tmp_path, doc)
