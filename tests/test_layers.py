"""The house's shape: import layers without cycles (import-linter), and small modules."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MAX_LINES = 400


def test_import_contracts_are_kept():
    """``pyproject.toml``'s contracts: cli -> search -> stages -> train, evaluate, lineage ->
    losses, models, data -> spec -> utils, siblings independent, no cycles at any depth."""
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    assert exe, "import-linter is a dev dependency: pip install -e '.[dev]'"
    out = subprocess.run([exe, "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert "4 kept, 0 broken" in out.stdout


def test_no_module_over_400_lines():
    sizes = {p.relative_to(REPO).as_posix(): len(p.read_text().splitlines()) for p in (REPO / "autokd").rglob("*.py")}
    over = {p: n for p, n in sizes.items() if n > MAX_LINES}
    assert not over, over
