"""The loss registry: names, specs, parameter validation and error messages."""

from __future__ import annotations

import pytest
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from autokd.losses import LossConfigError, LossSpec, available, create, get_spec, register

EXPECTED_KINDS = {
    "kd": "logit",
    "dkd": "logit",
    "cakd": "logit",
    "normkd": "logit",
    "lskd": "logit",
    "clkd": "logit",
    "ctkd": "logit",
    "ls": "label",
    "fitnet": "feature",
    "at": "feature",
    "nd": "feature",
    "rkd": "relation",
    "pkt": "relation",
    "sp": "relation",
    **{name: "token" for name in ("fkl", "rkl", "jsd", "tvd", "skl", "srkl", "akl")},
    "hidden_mse": "feature",
    "hidden_cos": "feature",
    **{name: "relation" for name in ("attn_kl", "minilm", "ckd_wr", "ckd_ltr")},
}

EXPECTED_PARAMS = {
    "kd": {"temperature"},
    "dkd": {"temperature", "alpha", "beta", "warmup_epochs"},
    "cakd": {"temperature", "bcd_weight", "scd_weight", "wcd_weight", "strong_k"},
    "normkd": {"t_norm"},
    "lskd": {"temperature"},
    "clkd": {"temperature", "instance_weight", "class_weight", "correlation_weight"},
    "ctkd": {"init_temperature", "min_temperature", "max_temperature", "lambda_max", "lambda_min", "schedule_epochs"},
    "ls": {"epsilon"},
    "fitnet": set(),
    "at": {"p"},
    "nd": {"norm_weight", "direction_weight"},
    "rkd": {"distance_weight", "angle_weight"},
    "pkt": set(),
    "sp": set(),
    **{name: {"temperature", "chunk_tokens"} for name in ("fkl", "rkl", "tvd")},
    "jsd": {"temperature", "chunk_tokens", "beta"},
    "skl": {"temperature", "chunk_tokens", "alpha"},
    "srkl": {"temperature", "chunk_tokens", "alpha"},
    "akl": {"temperature", "chunk_tokens", "mu"},
    "hidden_mse": set(),
    "hidden_cos": set(),
    "attn_kl": set(),
    "minilm": {"relation_heads"},
    "ckd_wr": {"pair_weight", "triple_weight", "window"},
    "ckd_ltr": {"pair_weight", "triple_weight", "window", "layer_map"},
}


def test_available_lists_all_methods():
    names = available()
    assert len(names) == 27  # 14 classification methods; 7 token-level LM divergences, 6 representation losses
    assert set(names) == set(EXPECTED_KINDS)
    assert names == sorted(names)


@pytest.mark.parametrize("name", sorted(EXPECTED_KINDS))
def test_spec_fields(name):
    spec = get_spec(name)
    assert isinstance(spec, LossSpec)
    assert spec.name == name
    assert spec.kind == EXPECTED_KINDS[name]
    assert spec.needs_teacher is (spec.kind != "label")
    assert spec.paper and spec.summary
    assert spec.summary == spec.cls.__doc__.strip().splitlines()[0].strip()
    assert issubclass(spec.cls, nn.Module)
    assert set(spec.params.model_fields) == EXPECTED_PARAMS[name]
    assert spec.params.model_config.get("extra") == "forbid"
    for field in spec.params.model_fields.values():
        assert not field.is_required() and field.description
    # every method builds with its defaults, and the instance is of the registered class
    assert isinstance(create(name), spec.cls)


def test_defaults_from_the_contract():
    assert get_spec("kd").defaults() == {"temperature": 4.0}
    assert get_spec("dkd").defaults() == {"temperature": 4.0, "alpha": 1.0, "beta": 8.0, "warmup_epochs": 20}
    assert get_spec("lskd").defaults() == {"temperature": 2.0}
    assert get_spec("normkd").defaults() == {"t_norm": 1.0}
    assert get_spec("ls").defaults() == {"epsilon": 0.1}
    assert get_spec("rkd").defaults() == {"distance_weight": 25.0, "angle_weight": 50.0}
    ctkd = get_spec("ctkd").defaults()
    assert ctkd["lambda_max"] == 1.0 and ctkd["lambda_min"] == 0.0 and ctkd["schedule_epochs"] == 10
    assert ctkd["min_temperature"] < ctkd["init_temperature"] < ctkd["max_temperature"]


def test_create_passes_validated_params():
    loss = create("dkd", beta=2, warmup_epochs=5)
    assert loss.beta == 2.0 and isinstance(loss.beta, float)
    assert loss.warmup_epochs == 5 and loss.temperature == 4.0


def test_unknown_name_lists_valid_names_and_suggests():
    with pytest.raises(LossConfigError) as info:
        create("dkdd")
    msg = str(info.value)
    assert "'dkdd'" in msg
    assert "did you mean 'dkd'" in msg
    for name in available():
        assert name in msg
    assert isinstance(info.value, ValueError)
    with pytest.raises(LossConfigError, match="did you mean 'fitnet'"):
        get_spec("fitnets")


def test_unknown_name_without_close_match_has_no_suggestion():
    with pytest.raises(LossConfigError) as info:
        create("zzzzzzzz")
    assert "did you mean" not in str(info.value)


def test_unknown_parameter_names_it_and_suggests():
    with pytest.raises(LossConfigError) as info:
        create("kd", temprature=3.0)
    msg = str(info.value)
    assert "unknown parameter 'temprature'" in msg
    assert "did you mean 'temperature'" in msg
    assert "valid parameters: temperature" in msg


def test_unknown_parameter_lists_all_valid_parameters():
    with pytest.raises(LossConfigError) as info:
        create("dkd", gamma=1.0)
    msg = str(info.value)
    for p in ("temperature", "alpha", "beta", "warmup_epochs"):
        assert p in msg


def test_invalid_value_names_param_expected_and_found():
    with pytest.raises(LossConfigError) as info:
        create("kd", temperature=-2.0)
    msg = str(info.value)
    assert "parameter 'temperature'" in msg
    assert "greater than 0" in msg
    assert "found -2.0" in msg
    with pytest.raises(LossConfigError, match="parameter 'warmup_epochs'.*integer.*found 'soon'"):
        create("dkd", warmup_epochs="soon")
    with pytest.raises(LossConfigError, match="parameter 'epsilon'.*less than or equal to 1"):
        create("ls", epsilon=1.5)
    with pytest.raises(LossConfigError, match="parameter 'strong_k'"):
        create("cakd", strong_k=0)


def test_cross_parameter_check_names_the_parameters():
    with pytest.raises(LossConfigError) as info:
        create("ctkd", init_temperature=50.0)
    msg = str(info.value)
    assert "init_temperature" in msg and "max_temperature" in msg


def test_parameterless_method_rejects_parameters():
    with pytest.raises(LossConfigError, match="unknown parameter 'weight'"):
        create("fitnet", weight=2.0)


def test_register_rejects_bad_definitions():
    class Loose(BaseModel):
        x: float = Field(1.0, description="x")

    with pytest.raises(ValueError, match="extra"):
        register("_loose", kind="logit", paper="-", params=Loose)

    class NoDesc(BaseModel):
        model_config = ConfigDict(extra="forbid")
        x: float = 1.0

    with pytest.raises(ValueError, match="description"):
        register("_nodesc", kind="logit", paper="-", params=NoDesc)

    class Ok(BaseModel):
        model_config = ConfigDict(extra="forbid")

    with pytest.raises(ValueError, match="kind"):
        register("_badkind", kind="pixel", paper="-", params=Ok)
    with pytest.raises(ValueError, match="twice"):

        @register("kd", kind="logit", paper="-", params=Ok)
        class Again(nn.Module):
            """dup"""

    assert "_loose" not in available() and len(available()) == 27


def _absolute_imports(path):
    import ast

    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level:
            yield node.module or ""


def test_losses_import_only_torch_pydantic_stdlib():
    """The catalog stands alone: torch, pydantic, the standard library, and the one stdlib-only
    helper shared with the model registry (import paths of user classes)."""
    import sys
    from pathlib import Path

    import autokd.losses as pkg
    import autokd.utils.imports as helper

    allowed = {"torch", "pydantic", "__future__"} | set(sys.stdlib_module_names)
    for path in Path(pkg.__file__).parent.glob("*.py"):
        for module in _absolute_imports(path):
            root = module.split(".")[0]
            assert root in allowed or module == "autokd.utils.imports", f"{path.name} imports {module}"
    assert all(m.split(".")[0] in sys.stdlib_module_names | {"__future__"} for m in _absolute_imports(Path(helper.__file__)))


def test_created_losses_return_scalars():
    torch.manual_seed(0)
    s, t = torch.randn(4, 5), torch.randn(4, 5)
    y = torch.tensor([0, 1, 2, 3])
    seq = {"attn_kl": (torch.softmax(torch.randn(4, 2, 5, 5), -1), torch.softmax(torch.randn(4, 2, 5, 5), -1)),
           "ckd_ltr": (torch.randn(4, 3, 5, 8), torch.randn(4, 5, 5, 8))}
    for name in available():
        kind = get_spec(name).kind
        loss = create(name)
        if kind in ("logit", "label"):
            out = loss(s, t, y)
        elif kind == "token":
            out = loss(torch.randn(2, 3, 7), torch.randn(2, 3, 7), None)
        elif name in seq:
            out = loss(*seq[name])
        elif get_spec(name).task == "lm":  # sequences of hidden states or attention vectors
            out = loss(torch.randn(4, 5, 8), torch.randn(4, 5, 8))
        elif name == "at":
            out = loss(torch.randn(4, 3, 2, 2), torch.randn(4, 6, 2, 2))
        else:
            out = loss(torch.randn(4, 6), torch.randn(4, 6))
        assert out.dim() == 0 and torch.isfinite(out), name
