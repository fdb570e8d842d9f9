"""Peak memory per data-parallel worker, ``runtime.strategy`` ddp vs fsdp, training an LM teacher.

The LM pipeline's decoder family at a teacher's size (``--layers`` x ``--width``, the shipped
pipeline's byte-level BPE vocabulary) is trained labels-only, as ``train_teacher`` trains it,
on 2 Ray Train workers (1 CPU each), once with ``strategy: ddp`` (every worker holds the whole
model, its gradients and AdamW's two moments) and once with ``strategy: fsdp`` (each holds half
of each). The workers report (``autokd.train.distributed``: ``workers.json`` beside the
checkpoint) their peak resident memory (``ru_maxrss``: the whole process, so Python, torch, Ray
and the data are in both figures) and the bytes of the parameters they hold.

The workers run with ``MALLOC_MMAP_THRESHOLD_=65536`` (glibc serves every block of 64 KiB or more
with its own mapping and unmaps it when freed), so a process's resident memory follows the tensors
it holds instead of keeping freed heap: its peak is then the peak of live memory.

Rank 0 writes the checkpoints, so under fsdp it gathers the whole state into CPU memory once an
epoch (one tensor at a time for the other ranks, which drop each at once): on a CPU that copy
shares the process's memory, so rank 1's figure is the one that shows the training-state saving;
on a GPU the gathered copy is host memory and every rank's device memory is sharded.

    python benchmarks/fsdp_memory.py [--layers 8] [--width 768] [--rows 32]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch


def run(strategy: str, model, train, val, cfg) -> list[dict]:
    import copy

    from autokd.spec.pipeline import RuntimeSpec
    from autokd.train.distributed import MEMORY_NAME, fit_on_workers
    from autokd.train.trainer import CrossEntropyObjective

    ckpt = Path(tempfile.mkdtemp(prefix=f"fsdp-mem-{strategy}-"))
    fit_on_workers(copy.deepcopy(model), train, val, cfg, CrossEntropyObjective(),
                   runtime=RuntimeSpec(device="cpu", workers=2, strategy=strategy), amp=None,
                   checkpoint_dir=ckpt, run_fingerprint="bench", name=f"teacher-{strategy}", progress=False)
    return json.loads((ckpt / MEMORY_NAME).read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--width", type=int, default=768)
    ap.add_argument("--rows", type=int, default=32, help="training windows (the figure is memory, not quality)")
    ap.add_argument("--out", default="benchmarks/results/fsdp_memory.json")
    args = ap.parse_args()
    from autokd.data.prepare import Split
    from autokd.data.text.prepare import prepare_text
    from autokd.models.registry import build_model
    from autokd.spec.lm import LMPipelineSpec

    import os

    os.environ["MALLOC_MMAP_THRESHOLD_"] = "65536"  # the Ray workers started below inherit it
    t0 = time.perf_counter()
    lm = LMPipelineSpec()
    text = prepare_text(lm.data, Path(tempfile.mkdtemp()))
    n = min(args.rows, len(text.train))
    train = Split(text.train.x[:n], text.train.y[:n], text.train.index[:n])
    val = Split(text.val.x[:16], text.val.y[:16], text.val.index[:16])
    params = {**lm.teacher.model.params, "layers": args.layers, "width": args.width,
              "heads": max(1, args.width // 64)}
    torch.manual_seed(0)
    model = build_model(lm.teacher.model.name, params, text.input_shape, text.num_classes)
    n_params = sum(p.numel() for p in model.parameters())
    cfg = lm.teacher.train.model_copy(update={"epochs": 1, "batch_size": 16, "optimizer": "adamw"})
    print(f"teacher: decoder {args.layers} x {args.width}, vocabulary {text.num_classes}, {n_params / 1e6:.1f} M "
          f"parameters ({n_params * 4 / 2**20:.0f} MiB fp32; with gradients and AdamW's moments "
          f"{n_params * 16 / 2**20:.0f} MiB)", flush=True)
    rows = {}
    for strategy in ("ddp", "fsdp"):
        rows[strategy] = run(strategy, model, train, val, cfg)
        for w in rows[strategy]:
            print(f"{strategy:>5} rank {w['rank']}: peak {w['peak_rss_mib']:,.0f} MiB resident, "
                  f"parameters held {w['param_mib']:,.1f} MiB", flush=True)
    ratios = {f"rank{r}_peak_fsdp_vs_ddp": round(rows["fsdp"][r]["peak_rss_mib"] / rows["ddp"][r]["peak_rss_mib"], 3)
              for r in range(2)}
    ratios["params_held_fsdp_vs_ddp"] = round(rows["fsdp"][1]["param_mib"] / rows["ddp"][1]["param_mib"], 3)
    ratios["rank1_peak_saved_mib"] = round(rows["ddp"][1]["peak_rss_mib"] - rows["fsdp"][1]["peak_rss_mib"], 1)
    print(f"ratios: {ratios}")
    out = {"command": "python " + " ".join(sys.argv), "teacher": {"layers": args.layers, "width": args.width,
           "vocab": text.num_classes, "parameters": n_params}, "rows": n, "processor": platform.processor(),
           "workers": rows, "ratios": ratios, "seconds": round(time.perf_counter() - t0, 1)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
