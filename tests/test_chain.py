"""Multi-stage pipelines: the chain spec, the chain stages (TAKD-shaped, through the library),
block-wise stepping stones, the generated DVC files, and (slow) a real `dvc repro` of a chain."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

from autokd.train.blockwise import BlockwiseObjective
from autokd.stages.chain import SourceLayout, run_chain
from autokd.stages.dvcgen import dvc_stages
from autokd.cli import app
from autokd.data.batches import BatchIterator
from autokd.data.prepare import load_prepared
from autokd.lineage import lineage_tree, read_manifest
from autokd.models import build_model
from autokd.models.artifact import load_model
from autokd.stages.validate import load_chain_spec, validate_chain
from autokd.spec.errors import SpecError
from autokd.stages import Layout, build_distill_objective
from autokd.train.distill import DistillObjective
from autokd.train.teacher_cache import CACHE_NAME, load_teacher_outputs

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()

TEACHER = {"name": "cnn", "params": {"stem_width": 8, "depths": [1, 1], "widths": [8, 16]}}
TA = {"name": "cnn", "params": {"stem_width": 6, "depths": [1, 1], "widths": [6, 12]}}
STUDENT = {"name": "cnn", "params": {"stem_width": 4, "depths": [1, 1], "widths": [4, 8]}}
FAST = {"epochs": 1, "batch_size": 64, "lr": 0.01, "seed": 0}

TINY_CHAIN = {
    "name": "tiny_chain",
    "data": {"source": "digits", "max_samples": 300, "seed": 0},
    "teacher": {"model": TEACHER, "train": {**FAST, "epochs": 2}},
    "steps": [
        {"name": "ta", "model": TA, "train": FAST, "distill": {"method": "kd", "temperature": 4.0, "alpha": 0.9}},
        {"name": "student", "model": STUDENT, "train": {**FAST, "seed": 1},
         "distill": {"method": "kd", "temperature": 4.0, "alpha": 0.9}, "blockwise": {"weight": 0.5}},
    ],
    "baseline": True,
    "direct": True,
    "ensemble": True,
    "evaluate": {"latency_runs": 2, "latency_warmup": 0, "throughput_batch": 16},
    "runtime": {"device": "cpu", "num_threads": 1},
}


# ------------------------------------------------------------------------------- the spec


@pytest.mark.parametrize("name", ["takd", "born_again", "blockwise"])
def test_shipped_chain_specs_validate(name):
    spec = load_chain_spec(REPO / "pipelines" / f"{name}.yaml", root=REPO)
    assert spec.name == name
    if name == "born_again":
        assert len(spec.steps) >= 2 and all(s.model == spec.teacher.model for s in spec.steps)
    if name == "takd":
        assert [s.name for s in spec.steps] == ["ta", "student"]
    if name == "blockwise":
        assert spec.final.blockwise is not None


@pytest.mark.parametrize("name", ["takd", "born_again", "blockwise"])
def test_committed_dvc_yaml_is_the_generated_one(name):
    spec_path = f"pipelines/{name}.yaml"
    spec = load_chain_spec(REPO / spec_path, root=REPO)
    raw = yaml.safe_load((REPO / spec_path).read_text())
    committed = yaml.safe_load((REPO / "pipelines" / name / "dvc.yaml").read_text())
    assert committed == {"stages": dvc_stages(spec, spec_path, f"runs/{name}", raw)}, (
        f"regenerate: python -m autokd chain dvc {spec_path} > pipelines/{name}/dvc.yaml")
    assert list(committed["stages"]) == spec.stage_names()


def test_dvc_params_list_only_what_each_stage_reads():
    spec = validate_chain(TINY_CHAIN, root=REPO)
    st = dvc_stages(spec, "c.yaml", "runs/c", raw=TINY_CHAIN)
    assert st["prepare"]["params"] == [{"c.yaml": ["data"]}]
    assert st["ta"]["params"] == [{"c.yaml": ["steps.0", "runtime"]}]
    assert "runs/c/artifacts/ta_outputs" in st["student"]["deps"] and "runs/c/artifacts/teacher" not in st["student"]["deps"]
    assert st["baseline"]["params"] == [{"c.yaml": ["steps.1.model", "steps.1.train", "runtime"]}]
    assert st["evaluate"]["params"] == [{"c.yaml": ["evaluate", "ensemble"]}]
    no_ensemble = {k: v for k, v in TINY_CHAIN.items() if k != "ensemble"}
    st = dvc_stages(validate_chain(no_ensemble, root=REPO), "c.yaml", "runs/c", raw=no_ensemble)
    assert st["evaluate"]["params"] == [{"c.yaml": ["evaluate"]}]  # DVC refuses keys the file lacks


def _issues(data) -> str:
    with pytest.raises(SpecError) as exc:
        validate_chain(data, file="c.yaml", root=REPO)
    return str(exc.value)


def test_chain_spec_errors_name_the_chain_key_paths():
    bad = json.loads(json.dumps(TINY_CHAIN))
    bad["steps"][1]["distill"]["method"] = "kdd"
    bad["steps"][0]["model"]["params"]["widths"] = [6]
    bad["steps"][1]["distill"]["temprature"] = 2
    msg = _issues(bad)
    assert "c.yaml: steps[1].distill.temprature: expected a known key" in msg and "did you mean 'temperature'?" in msg
    bad["steps"][1]["distill"].pop("temprature")
    msg = _issues(bad)
    assert "steps[1].distill.method: expected a distillation method" in msg and "did you mean 'kd'?" in msg
    assert "steps[0].model.params: expected depths and widths must have one entry per stage" in msg


def test_chain_spec_rejects_reserved_duplicate_and_bad_blockwise():
    dup = json.loads(json.dumps(TINY_CHAIN))
    dup["steps"][1]["name"] = "ta"
    assert "unique" in _issues(dup)
    reserved = json.loads(json.dumps(TINY_CHAIN))
    reserved["steps"][0]["name"] = "teacher"
    assert "reserved" in _issues(reserved)
    mlp = json.loads(json.dumps(TINY_CHAIN))
    mlp["steps"][1]["model"] = {"name": "mlp", "params": {"hidden": [16]}}
    assert "steps[1].blockwise: expected a step whose model family is one of ['cnn', 'resnet_s1']" in _issues(mlp)
    feat = json.loads(json.dumps(TINY_CHAIN))
    feat["steps"][1]["distill"]["method"] = "at"
    assert "steps[1].distill.method: expected a logit method with blockwise" in _issues(feat)
    stones = json.loads(json.dumps(TINY_CHAIN))
    stones["steps"][1]["blockwise"]["stones"] = [3]
    assert "steps[1].blockwise.stones: expected stage numbers between 1 and 2" in _issues(stones)


def test_cli_chain_bad_spec_exits_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**TINY_CHAIN, "steps": []}))
    res = runner.invoke(app, ["chain", "run", str(bad), "--root", str(tmp_path / "r")])
    assert res.exit_code == 2 and "steps" in res.output
    assert not (tmp_path / "r").exists()


# ------------------------------------------------------------------------------ stepping stones


def _cnn(params, seed=0):
    torch.manual_seed(seed)
    return build_model("cnn", params, (1, 8, 8), 10)


def _stones(teacher=None, student=None):
    teacher = teacher or _cnn({"stem_width": 8, "depths": [1, 1, 1], "widths": [8, 16, 16]})
    student = student or _cnn(STUDENT["params"], 1)
    base = DistillObjective("kd", {"temperature": 4.0}, 0.9, teacher=teacher)
    return BlockwiseObjective(base, student, teacher, (1, 8, 8), weight=1.0), student, teacher


def test_stepping_stones_share_the_student_and_freeze_the_teacher():
    obj, student, teacher = _stones()
    assert obj.stones == [1, 2]
    t_state = {k: v.clone() for k, v in teacher.state_dict().items()}
    s_ids = {id(p) for p in student.parameters()}
    t_ids = {id(p) for p in teacher.parameters()}
    own = {id(p) for p in obj.parameters()}
    assert own.isdisjoint(t_ids) and own.isdisjoint(s_ids)  # only the connectors are the objective's
    assert all(not p.requires_grad for p in teacher.parameters())

    obj.train()
    student.train()
    x = torch.randn(16, 1, 8, 8)
    _, feats = student(x, return_features=True)
    stones = obj.stone_logits(feats)
    assert set(stones) == {1, 2} and all(z.shape == (16, 10) for z in stones.values())
    stones[1].sum().backward()  # stone 1 = student stem + stage1 -> connector -> teacher stages 2, 3 + head
    assert student.stem[0].weight.grad is not None and student.stages[0][0].conv1.weight.grad.abs().sum() > 0
    assert student.stages[1][0].conv1.weight.grad is None  # stage 2 is not part of stone 1
    assert all(p.grad is None for p in teacher.parameters())
    assert obj.connectors["1"].proj[0].weight.grad is not None
    assert teacher.training is False
    for k, v in teacher.state_dict().items():
        assert torch.equal(v, t_state[k]), k  # BatchNorm running statistics untouched too


def test_stone_k_computes_student_prefix_then_teacher_suffix():
    obj, student, teacher = _stones()
    student.eval()
    obj.eval()
    x = torch.randn(4, 1, 8, 8)
    with torch.no_grad():
        _, feats = student(x, return_features=True)
        got = obj.stone_logits(feats)[2]
        h = obj.connectors["2"](feats["stage2"])
        h = teacher.stages[2](h)
        want = teacher.head(teacher.pool(h).flatten(1))
    assert torch.allclose(got, want, atol=1e-6)


def test_blockwise_loss_formula():
    obj, student, teacher = _stones()
    batch = next(iter(BatchIterator(torch.randn(32, 1, 8, 8), torch.randint(0, 10, (32,)), 32, seed=0)))
    loss, logits, parts = obj(student, batch)
    expect = 0.1 * parts["ce"] + 0.9 * (parts["distill"] + 1.0 * parts["stones"])
    assert torch.allclose(loss.detach(), expect, atol=1e-6)
    assert obj.teacher_calls == 1


def test_blockwise_with_weight_zero_trains_the_same_student_as_plain_kd():
    """The stones only add a term: at weight 0 the student's updates are plain KD's, bit for bit."""
    from autokd.data.prepare import Split
    from autokd.spec.pipeline import TrainSpec
    from autokd.train import seed_everything, train

    torch.manual_seed(0)
    x, y = torch.randn(96, 1, 8, 8), torch.randint(0, 10, (96,))
    split = Split(x, y, torch.arange(96))
    teacher = _cnn({"stem_width": 8, "depths": [1, 1, 1], "widths": [8, 16, 16]})
    cfg = TrainSpec(epochs=2, batch_size=32, lr=0.01, seed=0)
    states = []
    for weight in (None, 0.0):
        seed_everything(1)
        student = build_model("cnn", STUDENT["params"], (1, 8, 8), 10)
        obj = DistillObjective("kd", {"temperature": 4.0}, 0.9, teacher=teacher)
        if weight is not None:
            obj = BlockwiseObjective(obj, student, teacher, (1, 8, 8), weight=weight)
        train(student, split, split, cfg, obj, device=torch.device("cpu"), progress=False)
        states.append(student.state_dict())
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


# ------------------------------------------------------------------------------ the chain, for real


@pytest.fixture(scope="module")
def tiny_chain(tmp_path_factory):
    root = tmp_path_factory.mktemp("chain")
    spec = validate_chain(TINY_CHAIN, root=root)
    layout = Layout(root)
    metrics = run_chain(spec, layout, progress=False)
    return spec, layout, metrics


def test_chain_metrics_cover_every_model_and_step(tiny_chain):
    spec, layout, metrics = tiny_chain
    on_disk = json.loads((layout.reports / "metrics.json").read_text())
    assert set(on_disk["models"]) == {"teacher", "ta", "student", "baseline", "direct"}
    acc = {k: v["accuracy"] for k, v in on_disk["models"].items()}
    assert on_disk["steps"]["ta"]["source"] == "teacher" and on_disk["steps"]["student"]["source"] == "ta"
    assert on_disk["steps"]["student"]["gain_over_source"] == pytest.approx(acc["student"] - acc["ta"])
    assert on_disk["steps"]["ta"]["gain_vs_baseline"] == pytest.approx(acc["ta"] - acc["baseline"])
    assert on_disk["steps"]["student"]["same_architecture_as_baseline"] is True
    assert on_disk["kd_gain"] == pytest.approx(acc["student"] - acc["baseline"])
    assert on_disk["direct_gain"] == pytest.approx(acc["student"] - acc["direct"])
    assert on_disk["ensemble"]["members"] == ["ta", "student"] and 0 <= on_disk["ensemble"]["accuracy"] <= 1
    assert (layout.reports / "plots" / "training_curves.png").stat().st_size > 1000


def test_each_step_caches_its_logits_and_the_next_reads_them(tiny_chain):
    spec, layout, _ = tiny_chain
    data = load_prepared(layout.data)
    ta = load_model(layout.model_dir("ta"))
    cache = load_teacher_outputs(layout.root / "artifacts" / "ta_outputs" / CACHE_NAME)
    with torch.no_grad():
        assert torch.allclose(cache.logits, ta(data.train.x), atol=1e-5)
    # the student step's objective reads the TA's cache and never runs the TA
    view = spec.step_pipeline(1)
    student = build_model("cnn", STUDENT["params"], data.input_shape, data.num_classes)
    obj = build_distill_objective(view, student, data, SourceLayout(layout.root, source="ta"), torch.device("cpu"))
    assert torch.equal(obj.cache.logits, cache.logits) and obj.teacher is None
    for batch in BatchIterator(data.train.x, data.train.y, 64, seed=0):
        obj(student, batch)
    assert obj.teacher_calls == 0


def test_lineage_chains_data_teacher_ta_student(tiny_chain):
    _, layout, _ = tiny_chain
    tree = lineage_tree(layout.model_dir("student"), layout.root)
    assert [p["kind"] for p in tree["parents"]] == ["dataset", "ta"]
    ta = tree["parents"][1]
    assert [p["kind"] for p in ta["parents"]] == ["dataset", "teacher"] and not ta["stale"]
    assert read_manifest(layout.model_dir("direct"))["parents"][1]["kind"] == "teacher"
    assert read_manifest(layout.model_dir("student"))["spec"]["blockwise"] == {"weight": 0.5, "stones": None}
    res = runner.invoke(app, ["lineage", "show", str(layout.model_dir("student")), "--root", str(layout.root)])
    assert res.exit_code == 0
    out = res.output
    assert out.index("student: artifacts/student") < out.index("<- ta: artifacts/ta") < out.index("<- teacher: artifacts/teacher")


def test_cli_chain_step_unknown_name_exits_2(tmp_path):
    spec = tmp_path / "c.yaml"
    spec.write_text(yaml.safe_dump(TINY_CHAIN))
    res = runner.invoke(app, ["chain", "step", str(spec), "studnet", "--root", str(tmp_path / "r")])
    assert res.exit_code == 2 and "did you mean 'student'?" in res.output


# ----------------------------------------------------------------------------- real DVC


@pytest.mark.slow
def test_dvc_repro_of_a_chain(tmp_path):
    from tests.test_pipeline import _copy_repo, _ran, _sh

    work = _copy_repo(tmp_path / "repo")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    spec = {**json.loads(json.dumps(TINY_CHAIN)), "name": "takd", "baseline": False, "direct": False}
    spec["steps"][1].pop("blockwise")
    (work / "pipelines" / "takd.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    text = _sh([sys.executable, "-m", "autokd", "chain", "dvc", "pipelines/takd.yaml"], work, env)
    (work / "pipelines" / "takd" / "dvc.yaml").write_text(text)
    _sh(["git", "init", "-q"], work)
    _sh(["git", "add", "-A"], work)
    _sh(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init"], work)

    out = _sh(["dvc", "repro", "pipelines/takd/dvc.yaml"], work, env)
    stages = {s.split(":")[-1] for s in _ran(out)}
    assert stages == {"prepare", "teacher", "ta", "student", "evaluate"}
    metrics = json.loads((work / "runs" / "takd" / "reports" / "metrics.json").read_text())
    assert set(metrics["steps"]) == {"ta", "student"}
    assert _ran(_sh(["dvc", "repro", "pipelines/takd/dvc.yaml"], work, env)) == set()
    spec["steps"][1]["distill"]["temperature"] = 2.0  # only the student step's params changed
    (work / "pipelines" / "takd.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    status = json.loads(_sh(["dvc", "status", "--json", "pipelines/takd/dvc.yaml"], work, env))
    assert {k.split(":")[-1] for k in status} == {"student"}  # evaluate follows once student's output changes
