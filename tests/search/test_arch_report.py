"""`autokd search arch` end to end: ranking files, shortlist accepted as student.model, --validate."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from autokd.cli import app
from autokd.spec.document import apply_overrides, load_yaml
from autokd.stages import validate_pipeline
from tests.conftest import tiny_cnn_spec

REPO = Path(__file__).resolve().parents[2]

TINY_PIPELINE = tiny_cnn_spec(student_epochs=3)


def _space(tmp_path: Path, teacher: str) -> Path:
    (tmp_path / "tiny.yaml").write_text(TINY_PIPELINE)
    space = {
        "name": "tiny_arch",
        "pipeline": str(tmp_path / "tiny.yaml"),
        "root": str(tmp_path / "root"),
        "teacher": teacher,
        "student": {"family": "cnn", "stem_width": [2, 4], "depth": [[1], [1, 2]], "width": [[4], [4, 8]]},
        "constraints": {"max_params": 3000, "latency": {"runs": 2, "warmup": 0}},
        "batch": {"size": 32},
        "top_k": 3,
        "validation": {"epochs": 1, "band": 0.3},
    }
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(space))
    return path


def _check_shortlist_accepted(shortlist: list, pipelines: list[Path]) -> None:
    """Every entry validates as the student.model of each pipeline (what the hparam search sets)."""
    assert shortlist and all(set(entry) == {"name", "params"} for entry in shortlist)
    for pipeline in pipelines:
        base = load_yaml(pipeline)
        for entry in shortlist:
            spec = validate_pipeline(apply_overrides(base, {"student.model": entry}), file=str(pipeline))
            assert spec.student.model.name == entry["name"] and spec.student.model.params == entry["params"]


def test_cli_writes_ranking_and_shortlist(tmp_path):
    space = _space(tmp_path, teacher="init")
    out = tmp_path / "searches"
    res = CliRunner().invoke(app, ["search", "arch", str(space), "--out", str(out), "--top-k", "2", "--quiet"])
    assert res.exit_code == 0, res.output
    d = out / "tiny_arch"
    assert "rejected by the constraints" in res.output and f"wrote {d}" in res.output
    assert (tmp_path / "root" / "artifacts" / "data" / "meta.json").exists()  # prepare ran into the root
    assert not (tmp_path / "root" / "artifacts" / "teacher").exists()  # teacher: init trains nothing

    doc = json.loads((d / "ranking.json").read_text())
    cands = doc["candidates"]
    assert doc["search"]["algorithm"] == "exhaustive" and doc["search"]["space_size"] == 8
    assert len(cands) + len(doc["rejected"]) == 8
    assert all(c["params"] <= 3000 for c in cands) and all(r["params"] > 3000 for r in doc["rejected"])
    proxies = [p["name"] for p in doc["proxies"]]
    assert {"params", "flops", "diswot_relation", "naswot"} <= set(proxies)
    for i, c in enumerate(cands):
        assert c["rank"] == i + 1
        assert set(c["proxies"]) == set(c["ranks"]) == set(proxies)
        assert c["model"]["name"] == "cnn" and c["flops"] > 0 and c["latency_ms"] > 0 and c["ms"]["total"] > 0
        assert set(proxies) <= set(c["ms"])
    assert [c["combined"] for c in cands] == sorted((c["combined"] for c in cands), reverse=True)
    lat = doc["latency_setup"]
    assert (lat["device"], lat["batch_size"], lat["threads"]) == ("cpu", 1, 1) and lat["cpu_count"]
    assert doc["pipeline"]["teacher"]["state"] == "init" and doc["pipeline"]["artifacts_made"] == ["prepare"]

    rows = list(csv.DictReader((d / "ranking.csv").open()))
    assert [r["key"] for r in rows] == [c["key"] for c in cands]
    md = (d / "ranking.md").read_text()
    assert cands[0]["key"] in md and "median" in md
    assert (d / "ranking.png").stat().st_size > 1000

    shortlist = yaml.safe_load((d / "shortlist.yaml").read_text())
    assert shortlist == [c["model"] for c in cands[:2]] and doc["shortlist"] == [c["key"] for c in cands[:2]]
    _check_shortlist_accepted(shortlist, [REPO / "pipelines" / "default.yaml", tmp_path / "tiny.yaml"])
    manifest = json.loads((d / "manifest.json").read_text())
    assert manifest["kind"] == "arch_search" and manifest["parents"][0]["kind"] == "dataset"


def test_shortlist_is_accepted_by_the_hparam_search(tmp_path):
    """The hyperparameter search's own loader reads the shortlist as its student.model choice."""
    hp = pytest.importorskip("autokd.search.hparams.spec")
    shortlist = [{"name": "cnn", "params": {"stem_width": 4, "depths": [2, 1], "widths": [16, 16],
                                             "kernel_size": 3, "block": "basic", "batch_norm": True}},
                 {"name": "cnn", "params": {"stem_width": 8, "depths": [1, 1], "widths": [8, 16],
                                             "kernel_size": 5, "block": "plain", "batch_norm": True}}]
    (tmp_path / "shortlist.yaml").write_text(yaml.safe_dump(shortlist))
    _check_shortlist_accepted(shortlist, [REPO / "pipelines" / "default.yaml"])
    spec = tmp_path / "hp.yaml"
    spec.write_text(yaml.safe_dump({
        "name": "hp", "pipeline": str(REPO / "pipelines" / "default.yaml"),
        "space": {"student.model": {"type": "choice", "shortlist": str(tmp_path / "shortlist.yaml")}}}))
    loaded = hp.load_search_spec(spec, base_dir=REPO)
    assert loaded.choices["student.model"] == shortlist


@pytest.mark.slow
def test_validate_distills_candidates_with_the_pipeline_code(tmp_path):
    space = _space(tmp_path, teacher="trained")
    out = tmp_path / "searches"
    res = CliRunner().invoke(app, ["search", "arch", str(space), "--out", str(out), "--validate", "4", "--quiet"])
    assert res.exit_code == 0, res.output
    root = tmp_path / "root" / "artifacts"
    assert (root / "teacher" / "model.safetensors").exists() and (root / "teacher_outputs").exists()
    d = out / "tiny_arch"
    v = json.loads((d / "validation.json").read_text())
    n_admitted = len(json.loads((d / "ranking.json").read_text())["candidates"])
    assert len(v["candidates"]) == min(4, n_admitted) and v["epochs"] == 1
    assert all(0 <= c["accuracy"] <= 1 and c["seconds"] > 0 for c in v["candidates"])
    assert {"combined", "params", "flops", "diswot_relation", "snip"} <= set(v["correlations"])
    assert "params" in v["calibrated"]["features"]  # 4 candidates: too few to calibrate, said so
    for row in v["correlations"].values():
        assert row["all"]["n"] == len(v["candidates"])
        assert row["all"]["tau"] is None or -1 <= row["all"]["tau"] <= 1
    assert "tau" in res.output and (d / "validation.png").stat().st_size > 1000
    assert "| proxy | τ (all)" in (d / "validation.md").read_text()
    assert not (d / "validate_checkpoints").exists() and not (d / "validation.partial.json").exists()

    # an interrupted validation resumes: finished candidates (same fingerprint) are not distilled again
    first = v["candidates"][0]
    partial = {first["key"]: {"accuracy": 0.123456, "val_accuracy": None, "seconds": 0.5,
                              "fingerprint": first["fingerprint"]}}
    (d / "validation.partial.json").write_text(json.dumps(partial))
    res = CliRunner().invoke(app, ["search", "arch", str(space), "--out", str(out), "--validate", "4", "--quiet"])
    assert res.exit_code == 0, res.output
    again = json.loads((d / "validation.json").read_text())["candidates"]
    assert again[0]["key"] == first["key"] and again[0]["accuracy"] == 0.123456
    assert [c["accuracy"] for c in again[1:]] == [c["accuracy"] for c in v["candidates"][1:]]  # deterministic
