"""safetensors files are the same bytes in every process (a DVC output's hash depends on it)."""

from __future__ import annotations

import json
import subprocess
import sys

import torch
from safetensors import safe_open

from autokd.utils.io import canonical_safetensors, save_safetensors

# The serializer's metadata map is ordered differently from process to process.
WRITE = """
import sys
from safetensors.numpy import save
import numpy as np
sys.stdout.buffer.write(save({"b": np.arange(6, dtype=np.float32), "a": np.ones(3, dtype=np.int64)},
                             metadata={k: k * 3 for k in "zyxwvutsrq"}))
"""


def _raw() -> bytes:
    return subprocess.run([sys.executable, "-c", WRITE], capture_output=True, check=True).stdout


def test_raw_serializer_order_varies_and_canonical_bytes_do_not():
    raws = [_raw() for _ in range(4)]
    canon = {canonical_safetensors(r) for r in raws}
    assert len(canon) == 1
    # the reason for the function: with ten metadata keys, four processes all agreeing by chance is ~1e-19
    assert len(set(raws)) > 1


def test_canonical_file_reads_back(tmp_path):
    path = tmp_path / "t.safetensors"
    x = torch.randn(4, 3)
    save_safetensors(path, {"x": x, "i": torch.arange(5)}, metadata={"two": "2", "one": "1"})
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    assert n % 8 == 0 and list(json.loads(raw[8 : 8 + n])) == sorted(json.loads(raw[8 : 8 + n]))
    with safe_open(str(path), framework="pt") as fh:
        assert fh.metadata() == {"one": "1", "two": "2"}
        assert torch.equal(fh.get_tensor("x"), x) and torch.equal(fh.get_tensor("i"), torch.arange(5))
