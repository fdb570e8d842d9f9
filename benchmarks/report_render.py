"""Size of the `autokd report` page and its render time in real headless Chromium.

    python benchmarks/report_render.py                    # the repo's own outputs + two tiny real searches
    python benchmarks/report_render.py --root . --no-searches

Builds the report of ``--root`` (default: a temporary tree with the committed pipeline outputs
and manifests plus a tiny real hyperparameter search and architecture search, as the browser
test does), then opens it from file:// in /usr/bin/chromium (Playwright) ``--runs`` times, each
in a fresh page, and takes the Navigation Timing figure from navigation start to the end of
the load event. Prints the size (bytes), the generation time, the median render time and the
command; writes benchmarks/results/report_render.json.
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
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]


def render_times(url: str, runs: int) -> tuple[list[float], list[str]]:
    from playwright.sync_api import sync_playwright

    times, requests = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        for _ in range(runs):
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("request", lambda r: requests.append(r.url))
            page.goto(url, wait_until="load")
            nav = page.evaluate("JSON.stringify(performance.getEntriesByType('navigation')[0])")
            entry = json.loads(nav)
            times.append(entry["loadEventEnd"] - entry["startTime"])
            page.close()
        version = browser.version
        browser.close()
    return times, [version] + sorted(set(requests))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=None, help="project root (default: a temporary real tree)")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "report_render.json")
    args = ap.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")

    from autokd.report import write_report

    with tempfile.TemporaryDirectory(prefix="autokd_report_") as tmp:
        root = args.root
        if root is None:
            from tests.report.report_support import build_tree

            root = build_tree(Path(tmp) / "project")
        t0 = time.perf_counter()
        path, report = write_report(root, Path(tmp) / "report.html")
        gen_s = time.perf_counter() - t0
        size = path.stat().st_size
        times, seen = render_times(path.resolve().as_uri(), args.runs)
    version, requests = seen[0], seen[1:]
    cmd = "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(__file__, Path.cwd())] + sys.argv[1:])
    result = {
        "command": cmd,
        "root": "temporary tree (committed pipeline outputs + tiny real searches)" if args.root is None else str(args.root),
        "sections_available": report.available,
        "size_bytes": size,
        "generate_seconds": round(gen_s, 3),
        "render_ms_median": round(statistics.median(times), 1),
        "render_ms_all": [round(t, 1) for t in times],
        "runs": args.runs,
        "metric": "Navigation Timing: startTime to loadEventEnd, file:// URL, fresh page each run",
        "requests": len(requests),
        "chromium": version,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"report: {size:,} bytes, {len(report.available)}/{len(report.sections)} sections, generated in {gen_s:.2f} s")
    print(f"render (navigation start -> load event end), median of {args.runs}: {result['render_ms_median']} ms "
          f"(all: {result['render_ms_all']}); requests: {len(requests)} (the page itself)")
    print(f"command: {cmd}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
