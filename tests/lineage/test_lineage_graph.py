"""The lineage graph of a small tree of real manifests: nodes, edges, stale marks after a
parent is rebuilt, and the renderers (Mermaid, DOT, SVG, PNG, JSON) and `autokd lineage graph`."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET

import pytest
from typer.testing import CliRunner

from autokd.cli import app
from autokd.lineage import build_graph

from lineage_support import EDGES, NODES, rebuild_teacher, small_tree

runner = CliRunner()
SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture
def tree(tmp_path):
    return small_tree(tmp_path / "repo")


def test_nodes_and_edges_of_a_small_tree(tree):
    g = build_graph(tree)
    assert {k: n.kind for k, n in g.nodes.items()} == NODES
    assert {(e.source, e.target) for e in g.edges} == EDGES
    assert len(g.edges) == len(EDGES)  # no duplicates
    assert not g.stale() and not any(n.missing for n in g.nodes.values()) and not g.warnings
    t0 = g.nodes["searches/s/trials/t0"]
    assert t0.params == {"distill.temperature": 2.0} and t0.metrics["val_accuracy"] == 0.81
    assert t0.status == "completed" and g.nodes["searches/s/trials/t1"].status == "stopped"
    assert g.nodes["artifacts/student"].metrics == {"val_accuracy": 0.8}
    # the chain under runs/c recorded "artifacts/data": resolved inside runs/c, not to the root's data
    assert g.parents("runs/c/artifacts/ta") == ["runs/c/artifacts/data"]


def test_rebuilt_parent_marks_children_and_edges_stale(tree):
    old = build_graph(tree).nodes["artifacts/teacher"].sha256
    new = rebuild_teacher(tree)["sha256"]
    assert new != old
    g = build_graph(tree)
    assert g.stale() == ["artifacts/student", "reports", "searches/s"]
    stale_edges = {(e.source, e.target) for e in g.edges if e.stale}
    assert stale_edges == {("artifacts/teacher", "artifacts/student"), ("artifacts/teacher", "reports"),
                           ("artifacts/teacher", "searches/s")}
    edge = next(e for e in g.edges if e.stale)
    assert (edge.recorded_sha256, edge.current_sha256) == (old, new)
    assert not g.nodes["artifacts/teacher"].stale  # its own parent (data) did not change


def test_missing_parent_and_foreign_manifest(tree):
    shutil.rmtree(tree / "runs" / "c" / "artifacts" / "data")
    (tree / "web").mkdir()
    (tree / "web" / "manifest.json").write_text('{"name": "a web app manifest"}')
    (tree / ".venv" / "x").mkdir(parents=True)
    (tree / ".venv" / "x" / "manifest.json").write_text("not json")
    g = build_graph(tree)
    missing = g.nodes["runs/c/artifacts/data"]
    assert missing.missing and missing.kind == "dataset"
    assert "web" not in g.nodes and len(g.warnings) == 1 and g.warnings[0].startswith("web/manifest.json")
    assert not any(k.startswith(".venv") for k in g.nodes)


def test_focus_keeps_ancestors_and_descendants(tree):
    g = build_graph(tree).focus("artifacts/teacher")
    assert set(g.nodes) == {"artifacts/data", "artifacts/teacher", "artifacts/student", "reports", "searches/s",
                            "searches/s/trials/t0", "searches/s/trials/t1"}


def test_mermaid(tree):
    rebuild_teacher(tree)
    text = build_graph(tree).to_mermaid()
    lines = text.splitlines()
    assert lines[0] == "flowchart LR"
    ids = {m.group(1): m.group(2) for m in (re.match(r'    (n\d+)\["(.*)"\]$', ln) for ln in lines) if m}
    assert len(ids) == len(NODES) and all('"' not in label for label in ids.values())
    links = [ln for ln in lines if "-->" in ln or ".->" in ln]
    assert len(links) == len(EDGES)
    for ln in links:
        a, b = re.match(r"    (n\d+) (?:-->|-\. stale \.->) (n\d+)$", ln).groups()
        assert a in ids and b in ids
    assert sum("stale .->" in ln for ln in links) == 3
    stale_line = next(ln for ln in lines if ln.startswith("    class ") and ln.endswith(" stale"))
    assert len(stale_line.split()[1].split(",")) == 3
    assert re.search(r"^    linkStyle (\d+,){2}\d+ stroke:", text, re.M)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pydot's pyparsing calls
def test_dot_parses_and_marks_stale(tree):
    rebuild_teacher(tree)
    text = build_graph(tree).to_dot()
    assert text.startswith("digraph lineage {") and text.rstrip().endswith("}")
    pydot = pytest.importorskip("pydot")  # DVC's own dependency: a real DOT parser
    (parsed,) = pydot.graph_from_dot_data(text)
    names = {n.get_name().strip('"') for n in parsed.get_nodes()} - {"node", "edge"}
    assert names == set(NODES)
    edges = {(e.get_source().strip('"'), e.get_destination().strip('"')) for e in parsed.get_edges()}
    assert edges == EDGES
    stale = [e for e in parsed.get_edges() if e.get_style() == "dashed"]
    assert len(stale) == 3
    if shutil.which("dot"):
        out = subprocess.run(["dot", "-Tsvg"], input=text, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr


def test_svg_is_xml_with_every_node_and_stale_marks(tree):
    rebuild_teacher(tree)
    svg = build_graph(tree).to_svg()
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg" and float(root.get("width")) > 0
    groups = [g for g in root.iter(f"{SVG}g") if "node" in (g.get("class") or "").split()]
    assert {g.get("data-id") for g in groups} == set(NODES)
    stale = [g for g in groups if "stale" in g.get("class").split()]
    assert {g.get("data-id") for g in stale} == {"artifacts/student", "reports", "searches/s"}
    for g in stale:
        rect = g.find(f"{SVG}rect")
        assert rect.get("stroke-dasharray") and rect.get("stroke") == "#dc2626"
    edges = [g for g in root.iter(f"{SVG}g") if (g.get("class") or "").startswith("edge")]
    assert len(edges) == len(EDGES) and sum("stale" in g.get("class") for g in edges) == 3
    assert "<script" not in svg and "http://" not in svg.replace("http://www.w3.org/2000/svg", "")


def test_png_has_png_magic(tree, tmp_path):
    out = tmp_path / "g.png"
    res = runner.invoke(app, ["lineage", "graph", "--root", str(tree), "--format", "png", "--out", str(out)])
    assert res.exit_code == 0, res.output
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000


def test_cli_graph_formats_and_errors(tree, tmp_path):
    res = runner.invoke(app, ["lineage", "graph", "--root", str(tree), "--format", "json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert {n["id"] for n in doc["nodes"]} == set(NODES)
    assert {(e["source"], e["target"]) for e in doc["edges"]} == EDGES
    res = runner.invoke(app, ["lineage", "graph", "--root", str(tree)])
    assert res.exit_code == 0 and res.output.startswith("flowchart LR")
    out = tmp_path / "g.svg"
    res = runner.invoke(app, ["lineage", "graph", "--root", str(tree), "-f", "svg", "-o", str(out)])
    assert res.exit_code == 0 and ET.parse(out).getroot().tag == f"{SVG}svg"
    res = runner.invoke(app, ["lineage", "graph", "--root", str(tree), "-f", "png"])
    assert res.exit_code == 2 and "error: --format png" in res.output
    res = runner.invoke(app, ["lineage", "graph", "--root", str(tree), "-f", "svgg"])
    assert res.exit_code == 2 and "unknown format 'svgg'" in res.output
    res = runner.invoke(app, ["lineage", "graph", "--root", str(tmp_path / "empty")])
    assert res.exit_code == 2 and "no such folder" in res.output
    res = runner.invoke(app, ["lineage", "graph", "--root", str(tree), "--focus", "artifacts/studnt"])
    assert res.exit_code == 2 and "did you mean 'artifacts/student'" in res.output
    res = runner.invoke(app, ["lineage", "graph", "--root", str(tree), "--focus", "runs/c/artifacts/ta", "-f", "json"])
    assert {n["id"] for n in json.loads(res.output)["nodes"]} == {
        "runs/c/artifacts/data", "runs/c/artifacts/ta", "runs/c/artifacts/student"}
