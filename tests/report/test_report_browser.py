"""The report in real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright).

Over a real tree (the committed pipeline outputs and manifests, a tiny real hyperparameter
search with a Pareto front and a tiny real architecture search with validation): the page
loads from file:// with no console error and no request but its own, every section is
visible with a nonzero size, and a click on a trials-table header sorts the rows. A full-page
screenshot goes to benchmarks/results/report.png.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from autokd.report import SECTION_KEYS, write_report
from tests.report.report_support import REPO, build_tree

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
SCREENSHOT = REPO / "benchmarks" / "results" / "report.png"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def report_file(tmp_path_factory):
    root = build_tree(tmp_path_factory.mktemp("report_tree") / "project")
    path, report = write_report(root)
    assert report.available == list(SECTION_KEYS)  # every input present: nothing shows "not available"
    return path


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.fail("/usr/bin/chromium is missing: apt-get install -y chromium (.ci/run does it)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


def _column(page, table: str, col: int) -> list[str]:
    return page.eval_on_selector_all(f"{table} tbody tr", f"rows => rows.map(r => r.cells[{col}].getAttribute('data-v'))")


def test_report_in_headless_chromium(report_file, browser):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    console, requests, failed, errors = [], [], [], []
    page.on("console", lambda m: console.append((m.type, m.text)))
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    page.on("requestfailed", lambda r: failed.append(r.url))
    url = report_file.resolve().as_uri()
    page.goto(url, wait_until="load")

    assert requests == [url], f"the page requested more than itself: {requests}"
    assert not failed and not errors
    assert not [c for c in console if c[0] in ("error", "warning")], console

    for key in SECTION_KEYS:
        loc = page.locator(f"section#{key}")
        assert loc.is_visible(), key
        box = loc.bounding_box()
        assert box and box["width"] > 0 and box["height"] > 0, key
        assert loc.get_attribute("data-available") == "true", key
        assert "not available" not in loc.inner_text(), key
    # images decoded (inline data: URIs) and the lineage SVG drawn
    sizes = page.eval_on_selector_all("img.plot", "imgs => imgs.map(i => [i.naturalWidth, i.complete])")
    assert len(sizes) >= 6 and all(w > 0 and ok for w, ok in sizes)
    svg = page.locator("#lineage-graph svg").bounding_box()
    assert svg and svg["width"] > 0 and svg["height"] > 0

    # sorting: a click on "val accuracy" sorts ascending, a second click descending (blanks last)
    table = "table#trials-tiny"
    headers = page.eval_on_selector_all(f"{table} thead th", "ths => ths.map(t => t.textContent)")
    col = headers.index("val accuracy")
    before = _column(page, table, col)
    page.click(f"{table} thead th:nth-child({col + 1})")
    asc = _column(page, table, col)
    values = [float(v) for v in asc if v]
    assert values == sorted(values) and sorted(asc) == sorted(before)
    assert page.get_attribute(f"{table} thead th:nth-child({col + 1})", "aria-sort") == "ascending"
    page.click(f"{table} thead th:nth-child({col + 1})")
    desc = [float(v) for v in _column(page, table, col) if v]
    assert desc == sorted(values, reverse=True)
    # a text column sorts too
    page.click(f"{table} thead th:nth-child(1)")
    names = _column(page, table, 0)
    assert names == sorted(names)

    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.goto(url, wait_until="load")
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    assert SCREENSHOT.stat().st_size > 10_000
    page.close()


def test_report_of_a_fresh_tree_says_what_to_run(tmp_path, browser):
    """Only the pipeline's metrics copied: the other sections render their 'not available' notes."""
    (tmp_path / "reports").mkdir()
    shutil.copy2(REPO / "reports" / "metrics.json", tmp_path / "reports" / "metrics.json")
    path, report = write_report(tmp_path)
    assert report.available == ["metrics"]
    page = browser.new_page()
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(path.resolve().as_uri(), wait_until="load")
    assert requests == [path.resolve().as_uri()]
    for key in SECTION_KEYS[1:]:
        loc = page.locator(f"section#{key}")
        assert loc.is_visible() and "not available" in loc.inner_text(), key
    assert "dvc repro pipelines/compare/dvc.yaml" in page.locator("section#methods").inner_text()
    assert "autokd search hparams" in page.locator("section#hparams").inner_text()
    page.close()
