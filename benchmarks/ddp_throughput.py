"""Data-parallel training on Ray Train workers vs one process: throughput and overhead, one run.

Two workloads, each trained from the same initial weights and the same global batches:

* ``classifier``: the default pipeline's teacher CNN on digits (1,077 training samples, batch 64);
* ``lm``: the shipped LM pipeline's student (decoder 2 x 128) on its pydoc windows (batch 16 of
  128 tokens), labels only.

Each is trained by the plain loop in this process (1 torch thread), by the Ray Train path with 1
worker (1 thread: the path's overhead at the same global batch) and with 2 workers (1 thread
each: the data-parallel speed-up on this 2-core machine); also in this process with 2 threads
(what the two cores give without workers). Each run's epochs include validation and the
checkpoint, as in a pipeline stage. Figures are the median epoch time over epochs 2..E (the first
warms up; Ray's start-up is not in an epoch), and the throughput derived from it.

    python benchmarks/ddp_throughput.py [--epochs 4] [--out benchmarks/results/ddp_throughput.json]
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch


def epoch_seconds(checkpoint_dir: Path) -> list[float]:
    from autokd.train.checkpoint import CKPT_NAME, load_checkpoint

    return [float(x) for x in load_checkpoint(checkpoint_dir / CKPT_NAME)[1]["epoch_seconds"]]


def run(kind: str, model, data, cfg, threads: int = 1, workers: int = 0) -> list[float]:
    from autokd.spec.pipeline import RuntimeSpec
    from autokd.train.distributed import fit_on_workers
    from autokd.train.trainer import CrossEntropyObjective, train

    ckpt = Path(tempfile.mkdtemp(prefix=f"ddp-{kind}-"))
    model = copy.deepcopy(model)
    if workers == 0:
        torch.set_num_threads(threads)
        train(model, data.train, data.val, cfg, CrossEntropyObjective(), device=torch.device("cpu"),
              checkpoint_dir=ckpt, run_fingerprint="bench", progress=False)
        torch.set_num_threads(1)
    else:
        fit_on_workers(model, data.train, data.val, cfg, CrossEntropyObjective(),
                       runtime=RuntimeSpec(device="cpu", workers=workers), amp=None, checkpoint_dir=ckpt,
                       run_fingerprint="bench", name=f"{kind}-w{workers}", progress=False)
    return epoch_seconds(ckpt)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--out", default="benchmarks/results/ddp_throughput.json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    from autokd.data.prepare import prepare_data
    from autokd.data.text.prepare import prepare_text
    from autokd.models.registry import build_model
    from autokd.spec.lm import LMPipelineSpec
    from autokd.spec.pipeline import PipelineSpec

    t0 = time.perf_counter()
    default, lm = PipelineSpec(), LMPipelineSpec()
    digits = prepare_data(default.data, Path(tempfile.mkdtemp()))
    text = prepare_text(lm.data, Path(tempfile.mkdtemp()))
    torch.manual_seed(0)
    workloads = {
        "classifier": (build_model(default.teacher.model.name, default.teacher.model.params, digits.input_shape,
                                   digits.num_classes), digits,
                       default.teacher.train.model_copy(update={"epochs": args.epochs, "batch_size": 64}),
                       len(digits.train), "samples"),
        "lm": (build_model(lm.student.model.name, lm.student.model.params, text.input_shape, text.num_classes), text,
               lm.student.train.model_copy(update={"epochs": args.epochs, "batch_size": 16}),
               int(text.train.y.numel()), "tokens"),
    }
    rows = {}
    for kind, (model, data, cfg, units, unit) in workloads.items():
        res = {}
        for label, kw in (("process, 1 thread", {}), ("process, 2 threads", {"threads": 2}),
                          ("ray, 1 worker", {"workers": 1}), ("ray, 2 workers", {"workers": 2})):
            secs = run(kind, model, data, cfg, **kw)
            med = statistics.median(secs[1:]) if len(secs) > 1 else secs[0]
            res[label] = {"epoch_seconds": [round(s, 3) for s in secs], "median_s": round(med, 3),
                          f"{unit}_per_s": round(units / med, 1)}
            print(f"{kind:>10} {label:>18}: {med:.2f} s an epoch, {units / med:,.0f} {unit}/s", flush=True)
        base = res["process, 1 thread"]["median_s"]
        res["ratios"] = {
            "speedup_2_workers_vs_1_process": round(base / res["ray, 2 workers"]["median_s"], 3),
            "speedup_2_workers_vs_1_worker": round(res["ray, 1 worker"]["median_s"] / res["ray, 2 workers"]["median_s"], 3),
            "speedup_2_threads_vs_1": round(base / res["process, 2 threads"]["median_s"], 3),
            "overhead_1_worker_vs_1_process": round(res["ray, 1 worker"]["median_s"] / base, 3),
        }
        print(f"{kind:>10} ratios: {res['ratios']}", flush=True)
        rows[kind] = {"units_per_epoch": units, "unit": unit, "batch_size": cfg.batch_size, **res}
    out = {"command": "python " + " ".join(sys.argv), "epochs": args.epochs, "processor": platform.processor(),
           "workloads": rows, "seconds": round(time.perf_counter() - t0, 1)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
