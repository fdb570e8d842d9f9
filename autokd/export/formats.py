"""The three export formats: each writes its model file and loads it back as a runner.

- ``safetensors``: the artifact's ``model.safetensors`` byte for byte (weights plus the
  recipe autokd rebuilds the model from); loading never unpickles.
- ``onnx``: :func:`torch.onnx.export` with the ``torch.export``-based (dynamo) exporter, the
  default since torch 2.9 (it needs ``onnxscript``), batch axis dynamic, weights embedded
  (one file). The per-node metadata the exporter adds (stack traces with absolute source paths,
  FX node text) is dropped, so the same model gives the same bytes wherever it is exported;
  the model's ``metadata_props`` carry the source artifact's hash instead. Loaded back with
  ONNX Runtime (CPU, one thread).
- ``torchscript``: :func:`torch.jit.trace` of the logits, saved through a buffer (the archive's
  inner folder name would otherwise follow the file name), without the debug records that
  hold absolute source paths. TorchScript is a pickle-based
  format: load it only from a trusted source. ``torch.jit`` is deprecated in torch 2.13 and
  still works; ONNX is the portable format.

A runner maps a float32 input batch (numpy) to logits (numpy).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import shutil
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import nn

from autokd.models.artifact import MODEL_FILE, load_model
from autokd.utils.io import atomic_path

FORMATS = ("safetensors", "onnx", "torchscript")
FILES = {"safetensors": MODEL_FILE, "onnx": "model.onnx", "torchscript": "model.ts"}
INPUT_NAME, OUTPUT_NAME = "input", "logits"
EXAMPLE_BATCH = 2  # torch.export specialises batch sizes 0 and 1

Runner = Callable[[np.ndarray], np.ndarray]


class ExportFailed(RuntimeError):
    """The exporter could not convert the model (exit 1: the input was valid)."""


class LogitsOnly(nn.Module):
    """``forward(input) -> logits``: one named input and output, whatever the model's signature."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input: torch.Tensor) -> torch.Tensor:  # noqa: A002 (the ONNX input's name)
        return self.model(input)


def _write_bytes(target: Path, data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence the exporter's progress lines and its notes on optional packages (torchvision)."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def write_safetensors(model_file: Path, model: nn.Module, input_shape, out: Path, meta: dict[str, str]) -> Path:
    target = out / FILES["safetensors"]
    with atomic_path(target) as tmp:
        shutil.copyfile(model_file, tmp)
    return target


def load_safetensors(path: Path) -> Runner:
    model = load_model(path)

    @torch.no_grad()
    def run(x: np.ndarray) -> np.ndarray:
        return model(torch.from_numpy(x)).numpy()

    return run


def _strip_node_metadata(proto: Any) -> None:
    """Drop every graph element's ``metadata_props`` (stack traces, FX text, scope names)."""
    def graph(g: Any) -> None:
        for seq in (g.input, g.output, g.value_info, g.initializer):
            for item in seq:
                if hasattr(item, "metadata_props"):
                    del item.metadata_props[:]
        for node in g.node:
            del node.metadata_props[:]
            node.doc_string = ""
            for attr in node.attribute:
                if attr.HasField("g"):
                    graph(attr.g)
                for sub in attr.graphs:
                    graph(sub)
        if hasattr(g, "metadata_props"):
            del g.metadata_props[:]

    graph(proto.graph)
    for fn in proto.functions:
        for node in fn.node:
            del node.metadata_props[:]
        if hasattr(fn, "metadata_props"):
            del fn.metadata_props[:]


def write_onnx(model_file: Path, model: nn.Module, input_shape, out: Path, meta: dict[str, str]) -> Path:
    import onnx

    wrapped = LogitsOnly(model).eval()
    example = (torch.zeros(EXAMPLE_BATCH, *input_shape),)
    try:
        with _quiet_exporter():
            program = torch.onnx.export(
                wrapped, example, None, dynamo=True, external_data=False, input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME], dynamic_shapes={INPUT_NAME: {0: torch.export.Dim("batch")}},
                verbose=False,
            )
        proto = program.model_proto
    except Exception as exc:  # noqa: BLE001 (the exporter raises many types; the message says why)
        raise ExportFailed(f"torch.onnx.export could not convert the model: {type(exc).__name__}: {exc}") from exc
    _strip_node_metadata(proto)
    del proto.metadata_props[:]
    for key in sorted(meta):
        proto.metadata_props.add(key=key, value=meta[key])
    onnx.checker.check_model(proto)
    target = out / FILES["onnx"]
    _write_bytes(target, proto.SerializeToString(deterministic=True))
    return target


def load_onnx(path: Path) -> Runner:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])

    def run(x: np.ndarray) -> np.ndarray:
        return session.run([OUTPUT_NAME], {INPUT_NAME: x})[0]

    return run


def write_torchscript(model_file: Path, model: nn.Module, input_shape, out: Path, meta: dict[str, str]) -> Path:
    wrapped = LogitsOnly(model).eval()
    example = (torch.zeros(EXAMPLE_BATCH, *input_shape),)
    buf = io.BytesIO()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            traced = torch.jit.trace(wrapped, example, check_trace=False)
            torch.jit.save(traced, buf, _extra_files={"autokd.json": json.dumps(meta, sort_keys=True)})
    except Exception as exc:  # noqa: BLE001
        raise ExportFailed(f"torch.jit.trace could not convert the model: {type(exc).__name__}: {exc}") from exc
    target = out / FILES["torchscript"]
    _write_bytes(target, _without_debug_records(buf.getvalue()))
    return target


def _without_debug_records(raw: bytes) -> bytes:
    """The TorchScript archive without its ``*.debug_pkl`` records (source ranges: absolute paths
    of the Python files and the caller's stack) and its per-write ``serialization_id``, so the
    same model traced first in a fresh process gives the same bytes wherever it runs. (A second
    trace in one process mangles class names: ``___torch_mangle_N``.) Loading needs neither;
    if torch's archive API changes, the archive is kept as saved."""
    try:
        reader = torch._C.PyTorchFileReader(io.BytesIO(raw))
        out = io.BytesIO()
        writer = torch._C.PyTorchFileWriter(out)
        for name in sorted(reader.get_all_records()):
            if name.endswith(".debug_pkl") or name == ".data/serialization_id":
                continue
            data = reader.get_record(name)
            writer.write_record(name, data, len(data))
        writer.write_end_of_file()
        return out.getvalue()
    except (AttributeError, RuntimeError, TypeError):
        return raw


def load_torchscript(path: Path) -> Runner:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        model = torch.jit.load(io.BytesIO(path.read_bytes()), map_location="cpu")  # our own file, just written
    model.eval()

    @torch.no_grad()
    def run(x: np.ndarray) -> np.ndarray:
        return model(torch.from_numpy(x)).numpy()

    return run


WRITERS = {"safetensors": write_safetensors, "onnx": write_onnx, "torchscript": write_torchscript}
LOADERS = {"safetensors": load_safetensors, "onnx": load_onnx, "torchscript": load_torchscript}


def runtime_name(fmt: str) -> str:
    """The runtime an export is checked with, and its version."""
    from importlib import metadata

    if fmt == "onnx":
        return f"onnxruntime {metadata.version('onnxruntime')}"
    if fmt == "torchscript":
        return f"torch.jit {torch.__version__}"
    return f"autokd load_model (torch {torch.__version__})"
