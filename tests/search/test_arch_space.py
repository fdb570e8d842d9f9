"""The architecture space file: validation with key paths, enumeration, genomes."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from typer.testing import CliRunner

from autokd.cli import app
from autokd.models import MODELS, build_model, count_params
from autokd.search.arch.families import SPACE_FAMILIES
from autokd.search.arch.space import load_space, validate_space
from autokd.spec.errors import SpecError

REPO = Path(__file__).resolve().parents[2]


def _space(**student):
    return {"student": {"family": "cnn", **student}}


def _issues(data) -> str:
    with pytest.raises(SpecError) as exc:
        validate_space(data, file="space.yaml")
    return exc.value.render()


def test_default_space_has_enough_candidates_under_its_budgets():
    spec = load_space(REPO / "search_spaces" / "students.yaml")
    assert spec.name == "students" and spec.space.family == "cnn"
    assert spec.space.size == 288
    cands = list(spec.space.candidates())
    assert len({c.key for c in cands}) == len(cands)
    budget = spec.constraints.max_params
    within = [c for c in cands if count_params(build_model(c.family, c.params, (1, 8, 8), 10)) <= budget]
    # latency (measured, machine-dependent) removes a few more at search time: keep a wide margin over 20
    assert len(within) >= 100
    default_student = {"stem_width": 4, "depths": [1, 1], "widths": [4, 8]}
    assert any(all(c.params[k] == v for k, v in default_student.items()) and c.params["kernel_size"] == 3
               and c.params["block"] == "basic" for c in cands)


def test_s1_space_is_the_64_diswot_students():
    spec = load_space(REPO / "search_spaces" / "s1.yaml")
    cands = list(spec.space.candidates())
    assert len(cands) == 64 == spec.space.size
    assert {tuple(c.params["depths"]) for c in cands} == {(a, b, c) for a in (1, 3, 5, 7) for b in (1, 3, 5, 7)
                                                          for c in (1, 3, 5, 7)}
    assert cands[0].key == "s1_111" and cands[0].model == {"name": "resnet_s1", "params": {"depths": [1, 1, 1]}}
    assert tuple(spec.input_shape) == (3, 32, 32) and spec.num_classes == 100


def test_every_registered_space_family_is_a_model_family():
    assert {"cnn", "mlp", "resnet_s1"} <= set(SPACE_FAMILIES)
    assert set(SPACE_FAMILIES) <= set(MODELS)


def test_candidates_decode_to_valid_model_params():
    spec = validate_space(_space(stem_width=[4, 8], depth=[[1, 2]], width=[[4, 8]], kernel_size=[3, 5],
                                 block=["basic", "plain"], fixed={"dropout": 0.1}))
    assert spec.space.size == 2 * 2 * 2 * 2 * 2
    for c in spec.space.candidates():
        MODELS["cnn"].params.model_validate(c.params)
        assert c.params["dropout"] == 0.1
    mlp = validate_space({"student": {"family": "mlp", "depth": [1, 3], "width": [8], "activation": ["relu", "tanh"]}})
    models = [c.model for c in mlp.space.candidates()]
    assert {"name": "mlp", "params": {"hidden": [8, 8, 8], "activation": "tanh"}} in models
    assert len(models) == 4


def test_mutation_changes_exactly_one_gene():
    spec = validate_space(_space(stem_width=[4, 8], depth=[[1, 2], [1, 2, 3]], width=[[4], [8, 16]]))
    rng = random.Random(0)
    for _ in range(50):
        g = spec.space.random_genome(rng)
        m = spec.space.mutate(g, rng)
        assert sum(a != b for a, b in zip(g, m)) == 1
        spec.space.decode(m)


@pytest.mark.parametrize("data, needle", [
    ({"student": {"family": "cnn"}, "proxys": ["naswot"]}, "proxys: expected a known key"),
    ({"student": {"family": "cnm"}}, "student.family: expected a searchable student family"),
    (_space(depth=[[1], [1]], width=[[4]]), "depth and width need one list of choices per stage"),
    (_space(depth=[[1, 1]], width=[[4]]), "choices must be distinct"),
    (_space(fixed={"dropot": 0.1}), "student.fixed.dropot: expected a known key"),
    (_space(fixed={"kernel_size": 5}), "student.fixed: expected only parameters that are not searched"),
    (_space(kernel_size=[4]), "student.kernel_size[0]: expected one of 1, 3, 5 or 7"),
    ({"student": {"family": "cnn"}, "proxies": ["naswott"]}, "proxies[0]: expected a proxy"),
    ({"student": {"family": "cnn"}, "combine": {"proxies": ["zen"]}, "proxies": ["naswot"]},
     "combine.proxies[0]: expected a proxy listed under `proxies` or a baseline"),
    ({"student": {"family": "cnn"}, "constraints": {"max_params": -1}}, "constraints.max_params: expected a number greater than 0"),
    ({"student": {"family": "cnn"}, "search": {"sample": 9, "population": 3}}, "must not exceed population"),
    ({"student": {"family": "resnet_s1", "depth": [[1, 3]]}}, "resnet_s1 has 3 stages"),
])
def test_bad_spaces_name_the_key_path(data, needle):
    text = _issues(data)
    assert needle in text, text
    assert text.startswith("space.yaml")


def test_suggestions_for_typos():
    assert "did you mean 'naswot'?" in _issues({"student": {"family": "cnn"}, "proxies": ["naswott"]})
    assert "did you mean 'cnn'?" in _issues({"student": {"family": "cnm"}})


def test_cli_reports_a_bad_space_with_exit_code_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("student:\n  family: cnn\n  depth: [[1], [1]]\n  width: [[4]]\ntop_k: 0\n")
    res = CliRunner().invoke(app, ["search", "arch", str(bad), "--out", str(tmp_path / "out")])
    assert res.exit_code == 2
    assert f"{bad}:5: top_k: expected a number greater than 0" in res.output
    assert "Traceback" not in res.output


def test_combination_may_use_the_baselines():
    spec = validate_space({**_space(), "proxies": ["snip"], "combine": {"method": "zscore", "proxies": ["snip", "params"]}})
    assert spec.combined_proxies == ["snip", "params"]
    default = load_space(REPO / "search_spaces" / "students.yaml")
    assert set(default.combined_proxies) <= set(default.proxies) | {"params", "flops"}
