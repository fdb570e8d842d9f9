"""A student cut out of its teacher (student.init, Minitron-style pruning of a decoder)."""

from __future__ import annotations

import pytest
import torch
import yaml

from autokd.models.decoder import DecoderParams
from autokd.models.prune import importance, prune_decoder
from autokd.models.registry import build_model

T = {"layers": 3, "width": 32, "heads": 4, "mlp_ratio": 2.0}


def _teacher():
    torch.manual_seed(0)
    return build_model("decoder", T, (10,), 40).eval()


def _x(n=6):
    return torch.randint(0, 40, (n, 10), generator=torch.Generator().manual_seed(1))


def test_keeping_everything_is_the_teacher():
    teacher = _teacher()
    student = prune_decoder(teacher, DecoderParams(**T), [0, 1, 2], _x())
    with torch.no_grad():
        assert torch.equal(student(_x()), teacher(_x()))


def test_dropped_mlp_neurons_equal_zeroing_them_in_the_teacher():
    """Width and heads kept (whole heads: a narrower width drops heads and LayerNorm channels
    together), half the MLP neurons dropped: the student's logits equal the teacher's with the
    dropped neurons set to zero (a hook on the teacher's GELU)."""
    teacher = _teacher()
    x = _x()
    student = prune_decoder(teacher, DecoderParams(layers=3, width=32, heads=4, mlp_ratio=1.0), [0, 1, 2], x)
    # neurons 32 of 64: the kept ones are the top half by importance
    _, _, neurons = importance(teacher, x)
    handles = []
    for i, block in enumerate(teacher.blocks):
        keep = torch.zeros(64, dtype=torch.bool)
        keep[torch.sort(-neurons[i], stable=True).indices[:32]] = True
        handles.append(block.mlp[1].register_forward_hook(lambda _m, _i, out, k=keep: out * k))
    try:
        with torch.no_grad():
            torch.testing.assert_close(student(x), teacher(x), atol=1e-5, rtol=1e-5)
    finally:
        for h in handles:
            h.remove()


def test_dropped_layers_equal_skipping_those_blocks():
    teacher = _teacher()
    student = prune_decoder(teacher, DecoderParams(layers=2, width=32, heads=4, mlp_ratio=2.0), [0, 2], _x())
    x = _x()
    with torch.no_grad():
        h = teacher.tok(x) + teacher.pos(torch.arange(10))
        for i in (0, 2):
            h, _ = teacher.blocks[i](h)
        ref = teacher.head(teacher.ln_f(h))
        torch.testing.assert_close(student(x), ref, atol=1e-5, rtol=1e-5)


def test_the_loudest_channels_and_heads_are_kept():
    teacher = _teacher()
    with torch.no_grad():
        for block in teacher.blocks:  # channel 5 and head 2 made loud in every layer
            block.ln1.weight[5] = 50.0
            block.attn.qkv.weight[2 * 32 + 2 * 8: 2 * 32 + 3 * 8] *= 20  # head 2's value rows
    channel, heads, _ = importance(teacher, _x())
    assert int(channel.argmax()) == 5 and all(int(h.argmax()) == 2 for h in heads)
    student = prune_decoder(teacher, DecoderParams(layers=3, width=16, heads=2, mlp_ratio=2.0), [0, 1, 2], _x())
    assert torch.equal(student.blocks[0].ln1.weight[(channel.sort(descending=True).indices[:16].sort().values
                                                     == 5).nonzero()[0]], torch.tensor([50.0]))


def test_spec_checks_the_cut_fits(tmp_path):
    from autokd.spec.errors import SpecError
    from autokd.stages.lm_validate import load_lm_spec
    from tests.test_lm_pipeline import TINY

    def spec(student_params, init):
        doc = {**TINY, "student": {**TINY["student"], "model": {"name": "decoder", "params": student_params},
                                   "init": init}}
        (tmp_path / "lm.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
        return load_lm_spec(tmp_path / "lm.yaml")

    ok = spec({"layers": 1, "width": 16, "heads": 1}, {"from": "teacher", "keep_every": 2})  # teacher 2 x 32 x 2
    assert ok.student.init.layers(2) == [0]
    with pytest.raises(SpecError, match=r"student\.init\.keep_every.*student\.model\.params\.layers: 2"):
        spec({"layers": 2, "width": 16, "heads": 1}, {"from": "teacher", "keep_every": 2})
    with pytest.raises(SpecError, match=r"student\.model\.params.*whole heads"):
        spec({"layers": 1, "width": 16, "heads": 2}, {"from": "teacher", "keep_layers": [1]})
    with pytest.raises(SpecError, match="exactly one of keep_layers and keep_every"):
        spec({"layers": 1, "width": 16, "heads": 1}, {"from": "teacher"})


def test_the_distill_stage_starts_from_the_pruned_teacher(tmp_path, monkeypatch):
    from autokd.stages.lm import run_lm_stage
    from autokd.stages.lm_init import initial_student
    from autokd.stages.lm_validate import load_lm_spec
    from autokd.data.text.prepare import load_prepared_text
    from autokd.models.artifact import load_model
    from autokd.stages.layout import Layout
    from tests.test_lm_pipeline import TINY

    monkeypatch.chdir(tmp_path)
    doc = {**TINY, "student": {**TINY["student"], "model": {"name": "decoder", "params":
                                                             {"layers": 1, "width": 16, "heads": 1}},
                               "init": {"from": "teacher", "keep_layers": [1]}}}
    (tmp_path / "lm.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    for stage in ("prepare", "train_teacher", "cache_teacher", "distill"):
        run_lm_stage(stage, "lm.yaml", ".", progress=False)
    layout = Layout(tmp_path)
    spec, data = load_lm_spec("lm.yaml"), load_prepared_text(layout.data)
    start = initial_student(spec, data, layout)
    teacher = load_model(layout.model_dir("teacher") / "model.safetensors")
    # every embedding column of the starting student is one of the trained teacher's
    assert all(any(torch.equal(col, teacher.tok.weight[:, j]) for j in range(32)) for col in start.tok.weight.T)
    import json

    manifest = json.loads((layout.model_dir("student") / "manifest.json").read_text())
    assert manifest["spec"]["student"]["init"] == {"from": "teacher", "keep_layers": [1], "keep_every": None,
                                                   "calibration_windows": 16}
