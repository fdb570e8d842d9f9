"""Lineage: manifests for every artifact and the graph that links them."""

from autokd.lineage.graph import lineage_tree, render_tree
from autokd.lineage.manifest import MANIFEST, file_sha256, git_state, package_versions, read_manifest, write_manifest

__all__ = [
    "MANIFEST",
    "file_sha256",
    "git_state",
    "lineage_tree",
    "package_versions",
    "read_manifest",
    "render_tree",
    "write_manifest",
]
