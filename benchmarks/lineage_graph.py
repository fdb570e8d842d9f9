"""Cost of the lineage commands on a real tree: building the graph, each renderer, verify.

Times (median of ``--repeat`` runs, in this process) ``build_graph`` over every manifest
under ``--root``, ``to_mermaid``/``to_dot``/``to_svg``/``to_png`` of that graph, and
``verify_tree`` (which re-hashes every artifact's files), and prints them with the number of
artifacts, links and bytes hashed, plus the load average (the numbers are only comparable on
an idle machine). Results go to ``benchmarks/results/lineage_graph.json``.

    python benchmarks/lineage_graph.py [--root .] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

from autokd.lineage import build_graph, verify_tree
from autokd.utils.io import atomic_write_json


def timed(fn, repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default=".")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--out", default="benchmarks/results/lineage_graph.json")
    args = ap.parse_args()
    load = os.getloadavg()
    build_s, g = timed(lambda: build_graph(args.root), args.repeat)
    result = {"root": args.root, "artifacts": sum(1 for n in g.nodes.values() if n.kind != "trial"),
              "trials": sum(1 for n in g.nodes.values() if n.kind == "trial"), "links": len(g.edges),
              "build_graph_s": build_s}
    for name in ("to_mermaid", "to_dot", "to_svg", "to_png"):
        secs, out = timed(getattr(g, name), args.repeat)
        result[f"{name}_s"], result[f"{name}_bytes"] = secs, len(out)
    verify_s, report = timed(lambda: verify_tree(args.root), args.repeat)
    hashed = 0
    for nid in g.nodes:
        files = g.nodes[nid].manifest.get("files") or {}
        hashed += sum((Path(args.root) / nid / f).stat().st_size for f in files if (Path(args.root) / nid / f).is_file())
    result.update(verify_s=verify_s, verify_ok=report.ok, verified_files=report.files, hashed_bytes=hashed,
                  loadavg_1min=load[0], cpus=os.cpu_count(), repeat=args.repeat,
                  command=" ".join([Path(sys.executable).name, *sys.argv]))
    for k, v in result.items():
        print(f"{k}: {v:.4f}" if isinstance(v, float) else f"{k}: {v}")
    atomic_write_json(args.out, result)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
