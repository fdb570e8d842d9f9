"""The built-in resnet_s1 family reproduces the DisWOT S1 space (ResNet20-style, CIFAR-100)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import pytest
from scipy.stats import kendalltau

from autokd.models import build_model, count_params
from autokd.search.arch.space import load_space

REPO = Path(__file__).resolve().parents[2]
GT_KD = REPO.parent / "shared" / "data" / "diswot_s1" / "s1-gt-kd.txt"


def s1_params(d1: int, d2: int, d3: int, num_classes: int = 100) -> int:
    """Independent count: 3x3 convs without bias, BatchNorm (2 params/channel), 1x1 conv +
    BN shortcut on the first block of stages 2 and 3, linear head."""
    conv = lambda cin, cout, k=3: cin * cout * k * k  # noqa: E731
    bn = lambda c: 2 * c  # noqa: E731
    stem = conv(3, 16) + bn(16)
    block = lambda cin, cout: conv(cin, cout) + bn(cout) + conv(cout, cout) + bn(cout) + (  # noqa: E731
        conv(cin, cout, 1) + bn(cout) if cin != cout else 0)
    s1 = d1 * block(16, 16)
    s2 = block(16, 32) + (d2 - 1) * block(32, 32)
    s3 = block(32, 64) + (d3 - 1) * block(64, 64)
    return stem + s1 + s2 + s3 + 64 * num_classes + num_classes


@lru_cache(maxsize=1)
def _counts() -> dict[str, int]:
    spec = load_space(REPO / "search_spaces" / "s1.yaml")
    out = {}
    for c in spec.space.candidates():
        m = build_model(c.family, c.params, tuple(spec.input_shape), spec.num_classes)
        out["".join(map(str, c.params["depths"]))] = count_params(m)
    return out


def test_s1_parameter_counts():
    counts = _counts()
    assert len(counts) == 64
    for key, n in counts.items():
        assert n == s1_params(*map(int, key)), key
    assert counts["333"] == 278324  # ResNet20 on CIFAR-100 (about 0.28M)
    assert counts["111"] == 83892 and counts["777"] == 667188


@pytest.mark.skipif(not GT_KD.exists(), reason=f"DisWOT S1 ground truth not found at {GT_KD}")
def test_s1_param_count_tau_matches_the_literature():
    counts = _counts()
    gt = dict(line.split() for line in GT_KD.read_text().splitlines() if line.strip())
    assert set(gt) == set(counts)
    keys = sorted(gt)
    tau = kendalltau([counts[k] for k in keys], [float(gt[k]) for k in keys]).statistic
    assert tau == pytest.approx(0.87, abs=0.03)  # DisWOT: ~0.87; a mismatch means the family is built differently
