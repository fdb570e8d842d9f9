"""ONNX Runtime vs PyTorch latency of an exported student on this CPU, batch 1 and 256, one thread.

PyTorch is timed by the project's one timing function (:func:`autokd.evaluate.timing.forward_times`:
``torch.utils.benchmark.Timer``, one forward per timed pass, seeded random input); ONNX Runtime
the same way: the same input, the same warm-up and number of passes, one ``session.run`` per
timed pass, one intra- and inter-op thread. The figure is the median per pass.

    python benchmarks/export_latency.py [--artifact artifacts/student] [--runs 200]

Prints the figures and the command; writes benchmarks/results/export_latency.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import sys
import tempfile
import timeit
from importlib import metadata
from pathlib import Path

import torch

from autokd.evaluate.timing import INPUT_SEED, forward_times
from autokd.export import export_artifact
from autokd.models.artifact import load_model, read_recipe

RESULTS = Path(__file__).resolve().parent / "results" / "export_latency.json"


def ort_times(path: Path, input_shape, runs: int, warmup: int, batch_size: int) -> list[float]:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    gen = torch.Generator().manual_seed(INPUT_SEED)  # the input forward_times uses
    x = torch.randn(batch_size, *input_shape, generator=gen).numpy()
    feed = {"input": x}
    for _ in range(warmup + 2):  # + the two warm-up passes Timer.timeit(1) adds
        session.run(["logits"], feed)
    return [timeit.timeit(lambda: session.run(["logits"], feed), number=1) for _ in range(runs)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--artifact", default="artifacts/student")
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=20)
    args = ap.parse_args()
    command = "python " + " ".join(shlex.quote(a) for a in sys.argv)

    model = load_model(args.artifact)
    shape = tuple(read_recipe(Path(args.artifact) / "model.safetensors")["input_shape"])
    with tempfile.TemporaryDirectory() as tmp:
        record = export_artifact(args.artifact, "onnx", Path(tmp) / "export")
        onnx_path = Path(tmp) / "export" / "model.onnx"
        rows = []
        for batch in (1, 256):
            pt = forward_times(model, shape, args.runs, warmup=args.warmup, threads=1, batch_size=batch)
            ox = ort_times(onnx_path, shape, args.runs, args.warmup, batch)
            pt_ms, ox_ms = statistics.median(pt) * 1e3, statistics.median(ox) * 1e3
            rows.append({"batch": batch, "pytorch_ms": pt_ms, "onnxruntime_ms": ox_ms, "speedup": pt_ms / ox_ms,
                         "pytorch_samples_per_s": batch / min(pt), "onnxruntime_samples_per_s": batch / min(ox)})
            print(f"batch {batch:>3}: PyTorch {pt_ms:.4f} ms, ONNX Runtime {ox_ms:.4f} ms (median of {args.runs}, "
                  f"1 thread): ONNX Runtime is {pt_ms / ox_ms:.2f}x PyTorch's speed")
    result = {
        "command": command, "artifact": args.artifact, "model": record["model"], "threads": 1,
        "runs": args.runs, "warmup": args.warmup, "rows": rows, "check": record["check"],
        "machine": {"cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
                    "load_average_1min": os.getloadavg()[0],
                    "python": platform.python_version()},
        "packages": {p: metadata.version(p) for p in ("torch", "onnxruntime", "onnx")},
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"command: {command}")
    print(f"wrote {RESULTS.relative_to(Path.cwd()) if RESULTS.is_relative_to(Path.cwd()) else RESULTS}")


if __name__ == "__main__":
    main()
