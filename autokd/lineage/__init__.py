"""Lineage: manifests for every artifact and the graph that links them."""

from autokd.lineage.diff import diff_artifacts, diff_manifests, render_diff
from autokd.lineage.graph import LineageGraph, build_graph, lineage_tree, render_tree
from autokd.lineage.manifest import MANIFEST, file_sha256, git_state, package_versions, read_manifest, write_manifest
from autokd.lineage.verify import VerifyReport, verify_tree

__all__ = [
    "MANIFEST",
    "LineageGraph",
    "VerifyReport",
    "build_graph",
    "diff_artifacts",
    "diff_manifests",
    "file_sha256",
    "git_state",
    "lineage_tree",
    "package_versions",
    "read_manifest",
    "render_diff",
    "render_tree",
    "verify_tree",
    "write_manifest",
]
