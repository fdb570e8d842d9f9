"""Peak memory of a token-level loss (forward + backward) at a 32K vocabulary, chunked vs not.

Each configuration runs in a fresh Python process, which records its peak resident memory
(``ru_maxrss``) before and after one forward + backward of the loss on ``tokens × vocab``
float32 logits; the figure is the increase. The logits and their gradient (2 × tokens × vocab
× 4 bytes) are needed whatever the loss does; chunking bounds everything else.

    python benchmarks/token_loss_memory.py [--vocab 32768] [--tokens 2048] [--method fkl]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import resource, sys, torch
torch.set_num_threads(1)
from autokd.losses import create
vocab, tokens, method, chunk = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
g = torch.Generator().manual_seed(0)
student = torch.randn(tokens, vocab, generator=g).requires_grad_(True)
teacher = torch.randn(tokens, vocab, generator=g)
loss = create(method, chunk_tokens=chunk)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
value = loss(student, teacher, None)
value.backward()
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print((after - before) * 1024)
"""


def measure(vocab: int, tokens: int, method: str, chunk: int) -> int:
    out = subprocess.run([sys.executable, "-c", CHILD, str(vocab), str(tokens), method, str(chunk)],
                         capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1])


def label(chunk: int) -> str:
    return "none" if chunk >= 10**9 else "auto" if chunk == 0 else str(chunk)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vocab", type=int, default=32768)
    ap.add_argument("--tokens", type=int, default=2048, help="tokens in the batch (e.g. 16 windows × 128)")
    ap.add_argument("--method", default="fkl")
    ap.add_argument("--chunks", type=int, nargs="+", default=[10**9, 0, 256],
                    help="tokens per chunk (10**9: one piece, no chunking; 0: auto)")
    ap.add_argument("--out", default="benchmarks/results/token_loss_memory.json")
    args = ap.parse_args()
    logits_mb = args.tokens * args.vocab * 4 / 2**20
    rows = []
    for chunk in args.chunks:
        peak = measure(args.vocab, args.tokens, args.method, chunk)
        rows.append({"chunk_tokens": chunk, "peak_increase_mb": round(peak / 2**20, 1)})
        print(f"{args.method} vocab {args.vocab} tokens {args.tokens} chunk {label(chunk):>9}: "
              f"+{peak / 2**20:8.1f} MiB over the inputs (one logits tensor is {logits_mb:.0f} MiB)")
    base = rows[0]["peak_increase_mb"]
    for r in rows[1:]:
        print(f"  chunk {label(r['chunk_tokens'])}: {r['peak_increase_mb'] / base:.2f}x the unchunked peak")
    result = {"command": "python " + " ".join(sys.argv), "vocab": args.vocab, "tokens": args.tokens,
              "method": args.method, "logits_mb": round(logits_mb, 1), "rows": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
