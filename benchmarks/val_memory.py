"""Peak memory of a language model's validation pass (``evaluate_split``) at a 32K vocabulary and
context 1,024: chunked to the logits budget (the trainer's default) vs one pass of every window
(as before the budget: up to 512 windows at once).

Each configuration runs in a fresh Python process that builds a small decoder (1 layer, width
64: the logits, not the model, are what grows), records its peak resident memory
(``ru_maxrss``), validates ``--windows`` random windows, and prints the increase. "one pass"
sets the budget out of reach, which is exactly the code path before it existed; both passes'
loss and accuracy are printed so the figures can be seen to agree.

    python benchmarks/val_memory.py [--vocab 32768] [--context 1024] [--windows 16]

(--windows 16 keeps the unchunked run at ~2 GiB of logits on this 24 GiB machine; 512 windows
unchunked would need 64 GiB of logits alone.)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import json, resource, sys, torch
torch.set_num_threads(1)
import autokd.utils.chunks as chunks
from autokd.data.prepare import Split
from autokd.models.registry import build_model
from autokd.train.trainer import evaluate_split
vocab, context, windows, chunked = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
if not chunked:
    chunks.LOGITS_BUDGET = 10**15
torch.manual_seed(0)
model = build_model("decoder", {"layers": 1, "width": 64, "heads": 2}, (context,), vocab)
x = torch.randint(0, vocab, (windows, context))
split = Split(x=x, y=torch.roll(x, -1, dims=1), index=torch.arange(windows))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
out = evaluate_split(model, split, torch.device("cpu"))
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
rows = chunks.rows_per_pass(model, x, torch.device("cpu"), 512)
print(json.dumps({"peak_increase_bytes": (after - before) * 1024, "rows_per_pass": rows, **out}))
"""


def measure(vocab: int, context: int, windows: int, chunked: bool) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(vocab), str(context), str(windows), str(int(chunked))],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vocab", type=int, default=32768)
    ap.add_argument("--context", type=int, default=1024)
    ap.add_argument("--windows", type=int, default=16)
    ap.add_argument("--out", default="benchmarks/results/val_memory.json")
    args = ap.parse_args()
    from autokd.utils.chunks import LOGITS_BUDGET

    logits_mb = args.windows * args.context * args.vocab * 4 / 2**20
    rows = {}
    for name, chunked in (("one pass", False), ("chunked", True)):
        r = measure(args.vocab, args.context, args.windows, chunked)
        rows[name] = {**r, "peak_increase_mb": round(r["peak_increase_bytes"] / 2**20, 1)}
        print(f"{name:>8}: +{rows[name]['peak_increase_mb']:8.1f} MiB peak, {r['rows_per_pass'] if chunked else args.windows}"
              f" windows per pass, loss {r['loss']:.6f}, accuracy {r['accuracy']:.6f}")
    ratio = rows["chunked"]["peak_increase_mb"] / rows["one pass"]["peak_increase_mb"]
    print(f"chunked / one pass: {ratio:.3f} (all {args.windows} windows' logits: {logits_mb:.0f} MiB; "
          f"budget {LOGITS_BUDGET * 4 / 2**20:.0f} MiB)")
    result = {"command": "python " + " ".join(sys.argv), "vocab": args.vocab, "context": args.context,
              "windows": args.windows, "logits_mb_all_windows": round(logits_mb, 1),
              "budget_mb": LOGITS_BUDGET * 4 / 2**20, "rows": rows, "ratio_chunked_to_one_pass": round(ratio, 4)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
