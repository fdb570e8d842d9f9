"""Cost of the training-free architecture search: median seconds per candidate and memory.

Runs ``autokd search arch`` in-process on a space (default: search_spaces/students.yaml,
every candidate built, constraint-checked incl. latency, scored by every proxy and freed)
and prints the median seconds per candidate, the median milliseconds per proxy, the peak
RSS of the process and its RSS before the first and after the first/last candidate (flat
means candidates are freed). Torch threads are the pipeline's (``runtime.num_threads``).
Results go to a temporary folder; the pipeline root must hold (or will get) the prepared
data and the trained teacher.

    python benchmarks/arch_cost.py [--space search_spaces/students.yaml] [--root .] [--rescore 400]

``--rescore N`` then scores the first 40 admitted candidates N times over, in the same
process, and prints the RSS every 50 (memory flat = candidates are freed, nothing leaks).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

import torch

from autokd.search.arch.run import run_arch_search


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--space", default="search_spaces/students.yaml")
    ap.add_argument("--root", default=None, help="pipeline root (default: the space's)")
    ap.add_argument("--rescore", type=int, default=0, help="then score candidates N more times, printing RSS")
    args = ap.parse_args()
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        summary = run_arch_search(args.space, out=tmp, root=args.root, progress=False)
        import json
        from pathlib import Path

        doc = json.loads((Path(summary["out_dir"]) / "ranking.json").read_text())
    wall = time.perf_counter() - t0
    meta = summary["meta"]
    cands = doc["candidates"]
    print("command: python " + " ".join(sys.argv))
    print(f"machine: {os.cpu_count()} CPUs, torch {torch.__version__}, {torch.get_num_threads()} torch thread(s), "
          f"load average before {load_before[0]:.2f}, after {os.getloadavg()[0]:.2f}")
    print(f"space: {meta['space_size']} candidates, {meta['admitted']} admitted, {meta['rejected']} rejected "
          f"({meta['algorithm']})")
    print(f"median seconds per candidate (build + constraints incl. latency + all proxies): "
          f"{meta['median_s_per_candidate']:.3f} s (max {meta['max_s_per_candidate']:.3f} s; goal <= 1 s)")
    proxy_ms = [sum(c["ms"][p["name"]] for p in doc["proxies"]) for c in cands]
    print(f"median proxies-only time per candidate: {statistics.median(proxy_ms):.1f} ms; "
          f"constraints (params, FLOPs, latency): {statistics.median(c['ms']['constraints'] for c in cands):.1f} ms")
    for p in doc["proxies"]:
        print(f"  {p['name']:16s} median {statistics.median(c['ms'][p['name']] for c in cands):7.2f} ms")
    print(f"teacher pass (once): {meta['teacher_ms']:.1f} ms; search {meta['seconds']:.1f} s; whole run {wall:.1f} s")
    print(f"peak RSS {meta['peak_rss_mb']:.0f} MiB; RSS before the first candidate {meta['rss_mb_start']:.0f} MiB, "
          f"after the first {meta['rss_mb_first_candidate']:.0f} MiB, after the last {meta['rss_mb_last_candidate']:.0f} MiB")
    if args.rescore:
        rescore(args.space, args.root, args.rescore)
    return 0


def rescore(space: str, root: str | None, n: int) -> None:
    import gc
    import itertools

    from autokd.search.arch.context import build_context, proxy_batch, signals
    from autokd.search.arch.ranking import Scored
    from autokd.search.arch.run import Scorer, rss_mb
    from autokd.search.arch.space import load_space

    spec = load_space(space)
    ctx = build_context(spec, root=root, progress=False)
    batch = proxy_batch(ctx.data, spec.batch)
    scorer = Scorer(spec, batch, signals(ctx, batch), ctx.input_shape, ctx.num_classes)
    cands = [c for c in itertools.islice(spec.space.candidates(), 120) if isinstance(scorer(c), Scored)][:40]
    line = []
    for i, cand in enumerate(itertools.islice(itertools.cycle(cands), n)):
        scorer(cand)
        if i % 50 == 0 or i == n - 1:
            gc.collect()
            line.append(f"{i + 1}: {rss_mb():.0f}")
    print(f"RSS (MiB) while scoring {len(cands)} candidates {n} times: " + ", ".join(line))


if __name__ == "__main__":
    sys.exit(main())
