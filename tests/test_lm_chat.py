"""The LM pipeline on chat data: every stage, completion-only targets, packed windows."""

from __future__ import annotations

import json
import math

import pytest
import torch
import yaml

from autokd.data.text.prepare import load_prepared_text
from autokd.stages.layout import Layout
from autokd.stages.lm import LM_STAGES, run_lm_stage
from tests.test_lm_pipeline import TINY


def _examples(path, n=48):
    rows = [{"prompt": f"Spell {i} in words.", "completion": f"{i} is written as the number {i}, plainly."}
            for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.mark.parametrize("packing,distill", [
    (True, {"method": "fkl", "alpha": 0.5, "top_k": 8}),
    (False, {"method": "rkl", "alpha": 0.5, "teacher_outputs": "live",
             "representation": {"method": "hidden_mse", "weight": 0.5}}),
], ids=["packed-topk-cache", "unpacked-live-representation"])
def test_every_lm_stage_runs_on_chat_data(tmp_path, monkeypatch, packing, distill):
    monkeypatch.chdir(tmp_path)
    _examples(tmp_path / "chat.jsonl")
    doc = {**TINY, "data": {"source": "files", "path": "chat.jsonl", "format": "chat", "packing": packing,
                            "holdout_every": 6, "context": 48, "tokenizer": {"vocab_size": 300}},
           "distill": distill}
    (tmp_path / "lm.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    for stage in LM_STAGES:
        run_lm_stage(stage, "lm.yaml", ".", progress=False)
    data = load_prepared_text(Layout(tmp_path).data)
    assert (data.train.segments is not None) is packing
    loss_share = float((data.test.y != -100).float().mean())
    assert 0.2 < loss_share < 0.9  # prompts and padding are not targets
    metrics = json.loads((tmp_path / "reports" / "metrics.json").read_text())
    for role in ("teacher", "baseline", "student"):
        assert math.isfinite(metrics[role]["nll"]) and metrics[role]["perplexity"] > 1
    assert 0 <= metrics["student"]["top1_agreement"] <= 1
    manifest = json.loads((Layout(tmp_path).data / "manifest.json").read_text())
    assert manifest["spec"]["data"]["packing"] is packing


def test_packing_refuses_sequence_level_kd(tmp_path):
    from autokd.spec.errors import SpecError
    from autokd.stages.lm_validate import load_lm_spec

    doc = {**TINY, "data": {**TINY["data"], "format": "chat", "packing": True},
           "distill": {"method": "fkl", "teacher_outputs": "live", "sequence": {"mode": "on_policy"}}}
    (tmp_path / "lm.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    with pytest.raises(SpecError, match="packing: false"):
        load_lm_spec(tmp_path / "lm.yaml")
