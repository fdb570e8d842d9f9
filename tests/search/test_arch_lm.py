"""`autokd search arch` over decoder students of a language-model pipeline: the ``decoder``
family's space, the proxies defined on token windows (checked against independent references),
a ranking on a tiny LM pipeline, and ``--validate`` distilling candidates exactly as the LM
``distill`` and ``evaluate`` stages do."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

from autokd.cli import app
from autokd.models.decoder import DecoderLM, DecoderParams
from autokd.search.arch.proxies import ProxyBatch, compute_proxy
from autokd.search.arch.proxies.base import cross_entropy
from autokd.search.arch.space import validate_space
from autokd.spec.errors import SpecError

from lm_support import TINY_LM

REPO = Path(__file__).resolve().parents[2]



def _space(tmp_path: Path, **changes) -> Path:
    pipeline = tmp_path / "lm.yaml"
    pipeline.write_text(yaml.safe_dump(TINY_LM, sort_keys=False))
    doc = {"name": "tiny_dec", "pipeline": str(pipeline), "root": str(tmp_path / "root"),
           "student": {"family": "decoder", "layers": [1, 2], "width": [16, 32], "heads": [2]},
           "constraints": {"latency": {"runs": 2, "warmup": 0}},
           "batch": {"size": 8, "split": "train", "seed": 0},
           "validation": {"epochs": 1}}
    doc.update(changes)
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def test_decoder_space_decodes_and_names_its_errors():
    spec = validate_space({"pipeline": "pipelines/lm.yaml",
                           "student": {"family": "decoder", "layers": [1, 3], "width": [64, 96], "heads": [2, 4],
                                       "mlp_ratio": [2, 4]}}, file="s.yaml")
    cands = list(spec.space.candidates())
    assert len(cands) == 16 == spec.space.size
    assert cands[0].model == {"name": "decoder", "params": {"layers": 1, "width": 64, "heads": 2, "mlp_ratio": 2.0}}
    assert len({c.key for c in cands}) == 16
    for c in cands:
        DecoderParams(**c.params)  # every combination is a model
    # a decoder space without `proxies` gets the proxies defined on token windows
    assert spec.proxies == ["snip", "grad_norm", "zico", "nonembedding_params"]
    with pytest.raises(SpecError) as err:
        validate_space({"pipeline": "pipelines/lm.yaml",
                        "student": {"family": "decoder", "width": [64, 96], "heads": [5]}}, file="s.yaml")
    assert "student" in err.value.render() and "width 64 does not split into 5 heads" in err.value.render()
    with pytest.raises(SpecError) as err:
        validate_space({"pipeline": "pipelines/lm.yaml", "proxies": ["snip", "diswot_relation"],
                        "student": {"family": "decoder"}}, file="s.yaml")
    text = err.value.render()
    assert "proxies[1]" in text and "diswot_relation" in text and "lm students" in text


def test_shipped_lm_space_validates():
    from autokd.search.arch.space import load_space

    spec = load_space(REPO / "search_spaces" / "lm_students.yaml")
    assert spec.space.family == "decoder" and spec.space.task == "lm" and spec.pipeline == "pipelines/lm.yaml"


def test_token_cross_entropy_matches_a_float64_reference():
    torch.manual_seed(0)
    logits = torch.randn(3, 5, 11, dtype=torch.float64)
    y = torch.randint(0, 11, (3, 5))
    y[0, :2] = -100  # prompt tokens of chat data count nowhere
    logp = logits - logits.exp().sum(-1, keepdim=True).log()
    keep = y != -100
    ref = -(logp[keep].gather(1, y[keep][:, None]).squeeze(1)).mean()
    assert float(cross_entropy(logits, y)) == pytest.approx(float(ref), rel=1e-12)
    # a classifier's (B, K) logits are unchanged
    z, t = torch.randn(4, 3, dtype=torch.float64), torch.tensor([0, 2, 1, 2])
    ref2 = -(z - z.exp().sum(-1, keepdim=True).log())[torch.arange(4), t].mean()
    assert float(cross_entropy(z, t)) == pytest.approx(float(ref2), rel=1e-12)


@pytest.mark.parametrize("layers,width,heads,ratio", [(1, 16, 2, 4.0), (3, 48, 4, 2.0)])
def test_nonembedding_params_counts_the_blocks_and_final_norm(layers, width, heads, ratio):
    p = DecoderParams(layers=layers, width=width, heads=heads, mlp_ratio=ratio)
    model = DecoderLM(97, 20, p)
    hidden = int(round(ratio * width))
    block = (2 * width) + (3 * width * width + 3 * width) + (width * width + width) + (2 * width) \
        + (width * hidden + hidden) + (hidden * width + width)
    batch = ProxyBatch(x=torch.zeros(2, 20, dtype=torch.long), y=torch.zeros(2, 20, dtype=torch.long), num_classes=97)
    assert compute_proxy("nonembedding_params", model, batch) == layers * block + 2 * width
    total = compute_proxy("params", model, batch)
    assert total - compute_proxy("nonembedding_params", model, batch) == 97 * width + 20 * width + 97 * width


def test_gradient_proxies_score_token_windows_and_leave_the_model_alone():
    torch.manual_seed(0)
    model = DecoderLM(50, 12, DecoderParams(layers=1, width=16, heads=2))
    x = torch.randint(0, 50, (4, 12))
    batch = ProxyBatch(x=x, y=torch.roll(x, -1, dims=1), num_classes=50)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    values = {n: compute_proxy(n, model, batch) for n in ("snip", "grad_norm", "zico", "flops")}
    assert all(math.isfinite(v) and v > 0 for v in values.values()), values
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())
    # grad_norm is the norm of the next-token CE gradient: an independent autograd pass
    loss = torch.nn.functional.cross_entropy(model(x).reshape(-1, 50), batch.y.reshape(-1))
    grads = torch.autograd.grad(loss, list(model.parameters()))
    assert values["grad_norm"] == pytest.approx(math.sqrt(sum(float((g.double() ** 2).sum()) for g in grads)),
                                                rel=1e-6)


def test_ranking_a_decoder_space_on_an_lm_pipeline(tmp_path):
    space = _space(tmp_path)
    out = tmp_path / "searches"
    res = CliRunner().invoke(app, ["search", "arch", str(space), "--out", str(out), "--quiet"])
    assert res.exit_code == 0, res.output
    doc = json.loads((out / "tiny_dec" / "ranking.json").read_text())
    assert doc["family"] == "decoder" and doc["pipeline"]["task"] == "lm" and doc["pipeline"]["num_classes"] == 300
    cands = doc["candidates"]
    assert len(cands) == 4
    # the shipped combination is the non-embedding parameter count: biggest blocks first
    assert [c["key"] for c in cands][0] == "dec_l2_w32_h2_m4"
    assert all(c["flops"] > 0 and c["latency_ms"] > 0 for c in cands)
    assert "vocabulary 300" in (out / "tiny_dec" / "ranking.md").read_text()
    short = yaml.safe_load((out / "tiny_dec" / "shortlist.yaml").read_text())
    assert short[0]["name"] == "decoder"
    assert not (tmp_path / "root" / "artifacts" / "teacher").exists()  # no proxy needed a teacher


def test_a_family_of_the_other_task_is_refused(tmp_path):
    space = _space(tmp_path, student={"family": "mlp", "depth": [1], "width": [8]}, proxies=["params"])
    res = CliRunner().invoke(app, ["search", "arch", str(space), "--out", str(tmp_path / "o"), "--quiet"])
    assert res.exit_code == 2 and "builds classify students" in res.output and "Traceback" not in res.output
    doc = yaml.safe_load(space.read_text())
    doc.update(pipeline=str(REPO / "pipelines" / "default.yaml"), student={"family": "decoder"})
    space.write_text(yaml.safe_dump(doc))
    res = CliRunner().invoke(app, ["search", "arch", str(space), "--out", str(tmp_path / "o"), "--quiet"])
    assert res.exit_code == 2 and "builds lm students" in res.output


def test_validate_distills_decoders_as_the_lm_stages_do(tmp_path):
    """Each validated row's test perplexity is what the LM ``distill`` stage, run on the pipeline
    spec with that student and the short schedule, then tested as ``evaluate`` does, gives."""
    from autokd.data.text.prepare import load_prepared_text
    from autokd.evaluate.lm import lm_metrics
    from autokd.models.artifact import MODEL_FILE, load_model
    from autokd.spec.document import apply_overrides
    from autokd.stages.layout import Layout
    from autokd.stages.lm import distill
    from autokd.stages.lm_validate import validate_lm_pipeline

    space = _space(tmp_path)
    out = tmp_path / "searches"
    res = CliRunner().invoke(app, ["search", "arch", str(space), "--out", str(out), "--validate", "3", "--quiet"])
    assert res.exit_code == 0, res.output
    d = out / "tiny_dec"
    v = json.loads((d / "validation.json").read_text())
    assert v["target"] == {"key": "perplexity", "label": "test perplexity", "higher_is_better": False}
    assert len(v["candidates"]) == 3 and all(c["perplexity"] > 1 and c["val_perplexity"] > 1 for c in v["candidates"])
    assert {"combined", "snip", "nonembedding_params", "params"} <= set(v["correlations"])
    md = (d / "validation.md").read_text()
    assert "−perplexity" in md and "| perplexity | val perplexity |" in md
    # τ is against −perplexity: recompute it for the parameter count from the rows
    from scipy.stats import kendalltau

    rows = v["candidates"]
    tau = kendalltau([r["scores"]["params"] for r in rows], [-r["perplexity"] for r in rows]).statistic
    got = v["correlations"]["params"]["all"]["tau"]
    assert (got is None and math.isnan(tau)) or got == pytest.approx(tau)

    row = rows[0]
    root = tmp_path / "stage_root"
    for part in ("data", "teacher", "teacher_outputs"):
        shutil.copytree(tmp_path / "root" / "artifacts" / part, root / "artifacts" / part)
    spec = validate_lm_pipeline(apply_overrides(TINY_LM, {"student.model": row["model"],
                                                           "student.train.epochs": 1}), root=root)
    layout = Layout(root)
    distill(spec, layout, progress=False)
    data = load_prepared_text(layout.data)
    stage = lm_metrics(load_model(layout.model_dir("student") / MODEL_FILE), None, data.test,
                       bytes_per_token=data.meta["bytes_per_token"]["test"], speed=False, prompts=2)
    assert stage["perplexity"] == row["perplexity"]
