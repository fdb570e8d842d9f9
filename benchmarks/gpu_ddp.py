"""1 vs N GPUs on Ray Train workers: tokens/s of LM training (for a lent GPU machine).

A decoder the size of GPT-2 small's blocks (12 x 768, 12 heads) at context 512 on the shipped
pydoc windows (BPE 1,024), labels only, bf16 autocast, global batch ``--batch``; trained by
``autokd.train.distributed.fit_on_workers`` with 1, 2, ... ``--max-gpus`` workers of one GPU
each (NCCL). Figures: the median epoch time over epochs 2..E and tokens/s, and N-GPU / 1-GPU.

    python benchmarks/gpu_ddp.py [--max-gpus N] [--epochs 3] [--batch 32]

Writes ``benchmarks/results/gpu_ddp.json``. Needs CUDA; on a machine without it, says so and exits 2.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-gpus", type=int, default=None)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--out", default="benchmarks/results/gpu_ddp.json")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device here: this benchmark needs one or more GPUs", file=sys.stderr)
        raise SystemExit(2)
    from autokd.data.text.prepare import prepare_text
    from autokd.models.registry import build_model
    from autokd.spec.lm import TextDataSpec
    from autokd.spec.pipeline import RuntimeSpec, TrainSpec
    from autokd.train.checkpoint import CKPT_NAME, load_checkpoint
    from autokd.train.distributed import fit_on_workers
    from autokd.train.trainer import CrossEntropyObjective

    gpus = args.max_gpus or torch.cuda.device_count()
    data = prepare_text(TextDataSpec(context=512), Path(tempfile.mkdtemp()))
    torch.manual_seed(0)
    model = build_model("decoder", {"layers": 12, "width": 768, "heads": 12}, data.input_shape, data.num_classes)
    cfg = TrainSpec(epochs=args.epochs, batch_size=args.batch, lr=3e-4, seed=0)
    tokens = int(data.train.y.numel())
    rows = {}
    for n in range(1, gpus + 1):
        ckpt = Path(tempfile.mkdtemp(prefix=f"gpu-ddp-{n}-"))
        runtime = RuntimeSpec(device="cuda", precision="bf16", workers=n, resources_per_worker={"cpu": 2, "gpu": 1})
        t0 = time.perf_counter()
        fit_on_workers(model, data.train, data.val, cfg, CrossEntropyObjective(), runtime=runtime,
                       amp=torch.bfloat16, checkpoint_dir=ckpt, run_fingerprint="gpu", name=f"gpu{n}", progress=False)
        secs = [float(x) for x in load_checkpoint(ckpt / CKPT_NAME)[1]["epoch_seconds"]]
        med = statistics.median(secs[1:]) if len(secs) > 1 else secs[0]
        rows[n] = {"epoch_seconds": secs, "median_s": med, "tokens_per_s": tokens / med,
                   "wall_s": time.perf_counter() - t0}
        print(f"{n} GPU(s): {tokens / med:,.0f} tokens/s ({med:.2f} s an epoch)", flush=True)
    base = rows[1]["tokens_per_s"]
    out = {"command": "python " + " ".join(sys.argv), "gpu": torch.cuda.get_device_name(0), "tokens_per_epoch": tokens,
           "rows": {str(n): {**r, "speedup_vs_1": r["tokens_per_s"] / base} for n, r in rows.items()}}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
