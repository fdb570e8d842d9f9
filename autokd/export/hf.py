"""``autokd export ARTIFACT --format hf``: a language-model artifact as a ``transformers`` folder.

The output loads offline with ``AutoModelForCausalLM.from_pretrained(DIR)`` and
``AutoTokenizer.from_pretrained(DIR)``::

    config.json, model.safetensors, generation_config.json   (save_pretrained)
    tokenizer.json, tokenizer_config.json                    the pipeline's tokenizer (PreTrainedTokenizerFast),
                                                             with the chat template for chat data
    README.md                                                the model card (what Hugging Face shows)
    source_manifest.json, export.json, manifest.json         lineage and the check, as for every export

* ``decoder`` students map exactly onto GPT-2 (``GPT2LMHeadModel``): learned positions,
  pre-LayerNorm blocks, fused q/k/v, an MLP of ``mlp_ratio × width``, the final LayerNorm and an
  untied (or tied) bias-free head. The weights are copied, the linear layers transposed into
  GPT-2's ``Conv1D`` layout, and ``activation_function: gelu`` (exact, as ``nn.GELU``; GPT-2's
  own default is the tanh approximation). A Llama config would need RMSNorm and rotary
  positions, which this decoder does not have, so it is not offered.
* ``hf_causal_lm`` students are already ``transformers`` models: saved with ``save_pretrained``
  (a padded vocabulary stays padded; the card says the logits beyond the tokenizer are no token).

**The check.** The exported folder is loaded back with ``AutoModelForCausalLM`` (offline,
safetensors only) and its logits compared with autokd's on up to ``CHECK_WINDOWS`` test windows:
the largest absolute difference must be within the tolerance and every position's argmax the
same; the tokenizer loaded with ``AutoTokenizer`` must encode a test window's text to the ids
autokd's tokenizer gives. The figures go into ``export.json`` and the card.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from autokd.data.text.prepare import PreparedText, load_prepared_text
from autokd.data.readers.base import DataReadError
from autokd.export.source import ExportInputError, _resolve, is_lm_recipe, open_artifact
from autokd.lineage.manifest import file_sha256, package_versions, write_manifest
from autokd.models.artifact import MODEL_FILE, load_model
from autokd.models.registry import count_params
from autokd.utils.io import atomic_path, atomic_write_json, atomic_write_text

CHECK_WINDOWS = 32
PACKAGES = ("autokd", "torch", "transformers", "tokenizers", "safetensors")


def gpt2_from_decoder(model: nn.Module):
    """A ``GPT2LMHeadModel`` with the decoder's weights (the same logits)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    p = model.params_spec
    hidden = max(1, int(round(p.mlp_ratio * p.width)))
    cfg = GPT2Config(vocab_size=model.vocab_size, n_positions=model.context, n_embd=p.width, n_layer=p.layers,
                     n_head=p.heads, n_inner=hidden, activation_function="gelu", resid_pdrop=0.0, embd_pdrop=0.0,
                     attn_pdrop=0.0, layer_norm_epsilon=model.ln_f.eps, tie_word_embeddings=p.tied_embeddings,
                     bos_token_id=None, eos_token_id=None)
    gpt = GPT2LMHeadModel(cfg)
    sd = model.state_dict()
    out = {"transformer.wte.weight": sd["tok.weight"], "transformer.wpe.weight": sd["pos.weight"],
           "transformer.ln_f.weight": sd["ln_f.weight"], "transformer.ln_f.bias": sd["ln_f.bias"],
           "lm_head.weight": sd["head.weight"]}
    for i in range(p.layers):
        src, dst = f"blocks.{i}.", f"transformer.h.{i}."
        pairs = {"ln1": "ln_1", "ln2": "ln_2"}
        for a, b in pairs.items():
            out[dst + b + ".weight"], out[dst + b + ".bias"] = sd[src + a + ".weight"], sd[src + a + ".bias"]
        linears = {"attn.qkv": "attn.c_attn", "attn.out": "attn.c_proj", "mlp.0": "mlp.c_fc", "mlp.2": "mlp.c_proj"}
        for a, b in linears.items():  # nn.Linear (out, in) -> GPT-2's Conv1D (in, out)
            out[dst + b + ".weight"] = sd[src + a + ".weight"].t().contiguous()
            out[dst + b + ".bias"] = sd[src + a + ".bias"]
    missing, unexpected = gpt.load_state_dict(out, strict=False)
    if unexpected or [k for k in missing if not k.endswith(".attn.bias") and not k.endswith(".attn.masked_bias")]:
        raise ExportInputError(f"decoder -> GPT-2: weights left over {unexpected}, missing {missing}")
    return gpt.eval()


def _hf_model(model: nn.Module, family: str):
    if family == "decoder":
        return gpt2_from_decoder(model), "GPT2LMHeadModel (mapped from autokd's decoder)"
    inner = model.model
    return inner.eval(), f"{type(inner).__name__} (the student's own transformers model)"


def _tokenizer_config(data: PreparedText, eos: str, template: str | None) -> dict[str, Any]:
    cfg: dict[str, Any] = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": data.context,
                           "eos_token": eos, "bos_token": eos, "unk_token": None, "clean_up_tokenization_spaces": False}
    if template is not None:
        cfg["chat_template"] = template
    return cfg


def _chat_template(data: PreparedText, root: Path) -> str | None:
    chat = data.meta.get("chat")
    if not chat:
        return None
    from autokd.data.text.chat import PLAIN_TEMPLATE

    if chat["template"] == "plain":
        return PLAIN_TEMPLATE
    path = _resolve(chat["template"], root)
    if not path.is_file():
        return None
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":  # a tokenizer_config.json: its template string
        text = json.loads(text).get("chat_template")
    return text if isinstance(text, str) else None


@torch.no_grad()
def _check(model: nn.Module, out: Path, data: PreparedText, tolerance: float) -> dict[str, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    loaded = AutoModelForCausalLM.from_pretrained(out, local_files_only=True, use_safetensors=True,
                                                  trust_remote_code=False).eval()
    x = data.test.x[:CHECK_WINDOWS]
    ours = model(x).float()
    theirs = loaded(input_ids=x).logits.float()[..., :ours.shape[-1]]
    diff = (ours - theirs).abs().max().item()
    agree = (ours.argmax(-1) == theirs.argmax(-1)).float().mean().item()
    tok = AutoTokenizer.from_pretrained(out, local_files_only=True)
    text = data.tokenizer().decode(data.test.x[0].tolist(), skip_special_tokens=False)
    same_ids = tok(text, add_special_tokens=False)["input_ids"] == data.tokenizer().encode(
        text, add_special_tokens=False).ids
    finite = diff == diff
    return {"split": "test", "windows": int(len(x)), "positions": int(x.numel()),
            "runtime": "transformers.AutoModelForCausalLM", "max_abs_diff": diff if finite else None,
            "argmax_agreement": agree, "tolerance": tolerance, "tokenizer_round_trip": bool(same_ids),
            "passed": bool(finite and diff <= tolerance and agree == 1.0 and same_ids)}


def _card(record: dict[str, Any], manifest: dict[str, Any], data: PreparedText, metrics: dict | None) -> str:
    c = record["check"]
    lines = [f"# {record['source']['artifact']} (autokd export)", "",
             f"A causal language model distilled with autokd, as a `transformers` folder: "
             f"{record['architecture']}, {record['parameters']:,} parameters, context {data.context}, "
             f"vocabulary {data.vocab_size}.", "", "```python",
             "from transformers import AutoModelForCausalLM, AutoTokenizer",
             "model = AutoModelForCausalLM.from_pretrained(DIR)", "tokenizer = AutoTokenizer.from_pretrained(DIR)",
             "```", "", "## Data", "",
             f"- corpus: {data.meta['corpus'].get('source')} ({data.meta.get('format', 'text')}), content sha256 "
             f"`{data.sha256[:16]}`", f"- windows: {data.meta['counts']}"]
    if data.meta.get("chat"):
        ch = data.meta["chat"]
        lines.append(f"- chat template: {ch['template']}; loss on {ch['loss_on']}; packing {ch['packing']}")
    if record.get("vocabulary"):
        lines.append(f"- vocabulary: {record['vocabulary']}")
    lines += ["", "## Check", "",
              f"Loaded back with {c['runtime']} on {c['windows']} test windows ({c['positions']} positions): max abs "
              f"logit difference {c['max_abs_diff']:.3g} (tolerance {c['tolerance']:g}), argmax agreement "
              f"{100 * c['argmax_agreement']:.2f}%, tokenizer round trip {'ok' if c['tokenizer_round_trip'] else 'FAILED'}: "
              f"{'passed' if c['passed'] else 'FAILED'}."]
    role = (metrics or {}).get(str(manifest.get("artifact", "")).rsplit("/", 1)[-1])
    if isinstance(role, dict) and "perplexity" in role:
        lines += ["", "## Evaluation (test split)", ""] + [f"- {k}: {v:.4g}" for k, v in sorted(role.items())
                                                          if isinstance(v, (int, float))]
    lines += ["", "## Lineage", "", f"- source artifact sha256 `{record['source']['sha256']}`",
              f"- parents: {', '.join(p.get('artifact', '?') for p in manifest.get('parents', []))}", ""]
    return "\n".join(lines)


def export_hf(artifact: str | Path, out: str | Path, *, root: str | Path = ".", data: str | Path | None = None,
              metrics: str | Path | None = None, tolerance: float = 1e-4) -> dict[str, Any]:
    """Export a language-model artifact as a ``transformers`` folder, checked; the export record."""
    root = Path(root)
    path, manifest, raw, recipe = open_artifact(artifact, root)
    if not is_lm_recipe(recipe):
        raise ExportInputError(f"{artifact} is a classifier (family {recipe.get('name')}): --format hf is for "
                               "language models; use safetensors, onnx or torchscript")
    try:
        import transformers  # noqa: F401
    except ImportError:
        raise ExportInputError("--format hf needs transformers: pip install 'autokd[hf]'") from None
    if data is None:
        parents = [p for p in manifest.get("parents", []) if p.get("kind") == "dataset"]
        if not parents:
            raise ExportInputError(f"{path / 'manifest.json'} names no dataset parent; pass --data DIR")
        data = root / parents[0]["artifact"]
    try:
        prepared = load_prepared_text(_resolve(data, root))
    except DataReadError as exc:
        raise ExportInputError(f"cannot load the prepared text: {exc}") from None
    out = Path(out)
    if out.resolve() == path.resolve():
        raise ExportInputError(f"--out {out} is the artifact folder itself; choose another folder")
    model = load_model(path / MODEL_FILE).eval()
    hf, architecture = _hf_model(model, recipe["name"])
    out.mkdir(parents=True, exist_ok=True)
    hf.save_pretrained(out, safe_serialization=True)
    atomic_write_text(out / "tokenizer.json", prepared.tokenizer_json)
    eos = prepared.tokenizer().id_to_token(int(prepared.meta["eot_id"]))
    atomic_write_json(out / "tokenizer_config.json", _tokenizer_config(prepared, eos, _chat_template(prepared, root)))
    with atomic_path(out / "source_manifest.json") as tmp:
        tmp.write_bytes(raw)
    check = _check(model, out, prepared, tolerance)
    files = sorted(f.name for f in out.iterdir() if f.is_file() and f.name not in ("export.json", "README.md",
                                                                                   "manifest.json"))
    record = {"format": "hf", "architecture": architecture, "model": recipe,
              "parameters": count_params(model, trainable_only=False),
              "vocabulary": getattr(model, "vocab_note", None),
              "source": {"artifact": manifest.get("artifact"), "kind": manifest.get("kind"),
                         "sha256": manifest["sha256"]},
              "data": {"content_sha256": prepared.sha256}, "check": check,
              "files": {name: file_sha256(out / name) for name in files}, "packages": package_versions(PACKAGES)}
    atomic_write_json(out / "export.json", record)
    metrics_path = Path(metrics) if metrics is not None else root / "reports" / "metrics.json"
    evaluation = json.loads(metrics_path.read_text()) if metrics_path.is_file() else None
    atomic_write_text(out / "README.md", _card(record, manifest, prepared, evaluation))
    write_manifest(out, kind="export", content=[*files, "export.json", "README.md"], parents=[path],
                   spec={"export": {"format": "hf", "tolerance": tolerance}},
                   metrics={"max_abs_diff": check["max_abs_diff"], "argmax_agreement": check["argmax_agreement"]},
                   root=root if out.resolve().is_relative_to(root.resolve()) else out.parent)
    if not check["passed"]:
        from autokd.export.run import ExportCheckFailed

        raise ExportCheckFailed(hf_summary(record), record)
    return record


def hf_summary(record: dict[str, Any]) -> str:
    """One line with the check figures."""
    c = record["check"]
    diff = "non-finite" if c["max_abs_diff"] is None else f"{c['max_abs_diff']:.3g}"
    return (f"hf check on {c['windows']} test windows with {c['runtime']}: max abs logit difference {diff} "
            f"(tolerance {c['tolerance']:g}), argmax agreement {100 * c['argmax_agreement']:.2f}%, tokenizer round "
            f"trip {'ok' if c['tokenizer_round_trip'] else 'FAILED'}: {'ok' if c['passed'] else 'FAILED'}")
