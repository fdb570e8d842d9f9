"""``MODEL_CARD.md``: what an exported model is, where it came from and how it was checked.

Rendered from the source artifact's manifest, its lineage (:func:`autokd.lineage.graph.lineage_tree`),
the evaluation's metrics file when there is one, and the export record (``export.json``).
Everything in it is a pure function of those inputs: no dates, no wall times (the metrics
file's ``latency_ms`` and ``throughput`` are left out), no absolute paths, so a DVC stage that
writes it gives the same bytes on a rerun.
"""

from __future__ import annotations

import json
from typing import Any

from autokd.lineage.graph import render_tree

TIMING_KEYS = ("latency_ms", "throughput")  # machine- and run-specific: not in a cached output
LOAD_HINTS = {
    "safetensors": (
        "```python\n"
        "from autokd.models.artifact import load_model\n"
        "model = load_model(\"{dir}/model.safetensors\")   # rebuilds the architecture; nothing is unpickled\n"
        "```\n"
        "Without autokd's loader: `config.json` → `model` holds the family, params, input shape and classes "
        "for `autokd.models.build_model`; the tensors load with `safetensors.torch.load_file`."
    ),
    "onnx": (
        "```python\n"
        "import onnxruntime as ort\n"
        "session = ort.InferenceSession(\"{dir}/model.onnx\", providers=[\"CPUExecutionProvider\"])\n"
        "logits = session.run([\"logits\"], {{\"input\": x}})[0]   # x: float32, shape (batch, {shape})\n"
        "```"
    ),
    "torchscript": (
        "```python\n"
        "import torch\n"
        "model = torch.jit.load(\"{dir}/model.ts\")   # input (batch, {shape}) -> logits\n"
        "```\n"
        "TorchScript is a pickle-based format: load it only from a source you trust. "
        "(`torch.jit` is deprecated in torch 2.13; ONNX is the portable format.)"
    ),
}


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, (dict, list)):
        return "`" + json.dumps(v, sort_keys=True) + "`"
    return "–" if v is None else str(v)


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(_flat(v, key + "."))
        else:
            out[key] = v
    return out


def _table(rows: dict[str, Any], head: tuple[str, str] = ("key", "value")) -> list[str]:
    if not rows:
        return ["(none recorded)"]
    lines = [f"| {head[0]} | {head[1]} |", "|---|---|"]
    lines += [f"| {k} | {_fmt(v)} |" for k, v in rows.items()]
    return lines


def _untimed(metrics: dict[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (metrics or {}).items() if k not in TIMING_KEYS}


def _find(tree: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for parent in tree.get("parents", []):
        if parent.get("kind") == kind:
            return parent
        found = _find(parent, kind)
        if found:
            return found
    return None


def _chain(tree: dict[str, Any]) -> str:
    """``student sha256:… <- teacher sha256:… <- dataset sha256:…`` (the first parent at each step
    that is not the dataset, then the dataset)."""
    parts, node = [], tree
    while node:
        parts.append(f"{node.get('kind')} `{node.get('artifact')}` (sha256 `{str(node.get('sha256'))[:12]}`)")
        parents = node.get("parents", [])
        models = [p for p in parents if p.get("kind") != "dataset"]
        data = [p for p in parents if p.get("kind") == "dataset"]
        node = (models or data or [None])[0]
    return " <- ".join(parts)


def render_card(record: dict[str, Any], manifest: dict[str, Any], tree: dict[str, Any],
                data_meta: dict[str, Any], evaluation: dict[str, Any] | None, out_label: str) -> str:
    """The model card's Markdown (see the module doc)."""
    kind = manifest.get("kind", "model")
    fmt = record["format"]
    model = record["model"]
    check = record["check"]
    lines = [f"# Model card: {kind} `{manifest.get('artifact')}` ({fmt})", ""]
    verdict = "passed" if check["passed"] else "FAILED"
    lines += [
        f"A {model['name']} classifier ({record['parameters']} parameters) for {model['num_classes']} classes, "
        f"exported from the autokd artifact `{manifest.get('artifact')}` (sha256 `{manifest.get('sha256')}`) "
        f"as **{fmt}** (`{record['model_file']}`). Export check on the test split: **{verdict}**.",
        "",
        "## Model",
        "",
        *_table({"family": model["name"], "params": model["params"], "input shape (no batch axis)": model["input_shape"],
                 "classes": model["num_classes"], "class names": data_meta.get("class_names"),
                 "input normalisation": data_meta.get("normalization")}),
        "",
    ]

    teacher = _find(tree, "teacher")
    lines += ["## Teacher", ""]
    if teacher is None:
        lines += ["None: this model was trained on labels alone (no teacher in its lineage).", ""]
    else:
        lines += [f"- artifact: `{teacher.get('artifact')}`", f"- sha256: `{teacher.get('sha256')}`"]
        if teacher.get("stale"):
            lines.append(f"- **stale**: rebuilt since; the student was made from sha256 `{teacher.get('recorded_sha256')}`")
        lines += ["", "Training-time metrics (its manifest):", "", *_table(_untimed(teacher.get("metrics"))), ""]
        if evaluation and isinstance(evaluation.get("teacher"), dict):
            lines += ["Test metrics (evaluation):", "", *_table(_untimed(evaluation["teacher"])), ""]

    data = _find(tree, "dataset")
    lines += ["## Data", ""]
    lines += [
        f"- dataset: `{data_meta.get('source')}`" + (f" (path `{data_meta['path']}`)" if data_meta.get("path") else ""),
        f"- artifact: `{data.get('artifact') if data else record['data']['artifact']}`",
        f"- manifest sha256: `{data.get('sha256') if data else '–'}`",
        f"- content sha256 (tensors of every split): `{data_meta.get('sha256')}`",
        f"- samples per split: {_fmt(data_meta.get('counts'))}",
        "",
    ]

    spec = manifest.get("spec") or {}
    lines += ["## Method and hyperparameters", ""]
    if "distill" in spec:
        lines += ["Distillation (the effective recipe: every method parameter, defaults filled in):", "",
                  *_table(_flat(spec["distill"])), ""]
    else:
        lines += ["No distillation: trained on labels alone.", ""]
    for section, body in spec.items():
        if section == "distill" or not isinstance(body, dict):
            continue
        lines += [f"`{section}`:", "", *_table(_flat(body)), ""]

    lines += ["## Metrics", ""]
    lines += ["Training-time metrics (the manifest):", "", *_table(_untimed(manifest.get("metrics"))), ""]
    if evaluation:
        roles = [r for r in (kind, "baseline", "teacher") if isinstance(evaluation.get(r), dict)]
        roles = list(dict.fromkeys(roles))
        keys = list(dict.fromkeys(k for r in roles for k in _untimed(evaluation[r])))
        lines += [f"Test metrics (evaluation; `{TIMING_KEYS[0]}` and `{TIMING_KEYS[1]}` are machine timings, "
                  "left out here):", "", "| metric | " + " | ".join(roles) + " |", "|---|" + "---|" * len(roles)]
        lines += [f"| {k} | " + " | ".join(_fmt(evaluation[r].get(k)) for r in roles) + " |" for k in keys]
        extra = {k: evaluation[k] for k in ("kd_gain", "compression", "test_samples") if k in evaluation}
        lines += ["", *_table(extra), ""]
    else:
        lines += ["No evaluation metrics file was found (run the evaluate stage for test metrics).", ""]

    lines += ["## Lineage", "", _chain(tree), "", "```text", *render_tree(tree), "```", ""]

    lines += ["## Export check", ""]
    lines += _table({"runtime": record["check"]["runtime"], "split": check["split"], "samples": check["samples"],
                     "max abs logit difference": check["max_abs_diff"],
                     "argmax agreement": f"{100 * check['argmax_agreement']:.2f}%", "mismatches": check["mismatches"],
                     "tolerance": check["tolerance"], "passed": check["passed"]})
    details = record.get("exporter") or {}
    if details:
        lines += ["", *_table(details, ("exporter", "value"))]
    lines += ["", "## Files", "", *_table(record["files"], ("file", "sha256")), ""]
    lines += ["## Loading", "", LOAD_HINTS[fmt].format(dir=out_label, shape=", ".join(map(str, model["input_shape"]))),
              ""]
    lines += ["## Package versions", "", *_table(record["packages"], ("package", "version")), ""]
    return "\n".join(lines)
