"""The export check: the exported file, loaded back in its runtime, against PyTorch on the test split.

Both sides run on the CPU with one thread (PyTorch under
:class:`autokd.evaluate.timing.torch_threads`, ONNX Runtime with one intra- and inter-op
thread), so the figures are the same on every run on one machine and can live in a cached
output. The check passes when every test sample gets the same top-1 class and the largest
absolute logit difference is at most ``tolerance`` (``max_abs_diff`` is None when the
exported model gives a NaN or infinite logit).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from autokd.evaluate.timing import torch_threads

CHUNK = 512  # samples per call: the exported batch axis is dynamic


def check_export(reference: nn.Module, runner, x: torch.Tensor, tolerance: float) -> dict[str, Any]:
    """Max absolute logit difference and top-1 agreement of ``runner`` against ``reference`` on ``x``."""
    reference.eval()
    ref_parts, got_parts = [], []
    with torch_threads(1), torch.no_grad():
        for start in range(0, len(x), CHUNK):
            batch = x[start : start + CHUNK].contiguous()
            ref_parts.append(reference(batch).numpy())
            got_parts.append(np.asarray(runner(batch.numpy()), dtype=np.float32))
    ref, got = np.concatenate(ref_parts), np.concatenate(got_parts)
    if ref.shape != got.shape:
        return {"samples": int(len(x)), "passed": False, "error": f"output shape {list(got.shape)}, "
                f"expected {list(ref.shape)}", "max_abs_diff": None, "argmax_agreement": 0.0, "mismatches": len(x)}
    finite = bool(np.isfinite(got).all())
    diff = float(np.abs(ref.astype(np.float64) - got.astype(np.float64)).max()) if finite else None
    same = ref.argmax(1) == got.argmax(1)
    agreement = float(same.mean())
    mismatches = int((~same).sum())
    return {
        "samples": int(len(x)),
        "max_abs_diff": diff,
        "argmax_agreement": agreement,
        "mismatches": mismatches,
        "tolerance": tolerance,
        "passed": diff is not None and mismatches == 0 and diff <= tolerance,
    }
