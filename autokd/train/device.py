"""Device and precision choice: ``device: auto`` picks CUDA (with AMP) when present."""

from __future__ import annotations

import contextlib
import os
import random

import numpy as np
import torch

from autokd.spec.pipeline import RuntimeSpec


def resolve_device(spec: RuntimeSpec | None = None) -> torch.device:
    name = (spec.device if spec else "auto")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"runtime.device is {name!r} but CUDA is not available on this machine")
    return torch.device(name)


def use_amp(spec: RuntimeSpec | None, device: torch.device) -> bool:
    mode = spec.amp if spec else "auto"
    if mode == "off":
        return False
    if mode == "on":
        return device.type == "cuda"
    return device.type == "cuda"


def autocast(device: torch.device, enabled: bool):
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.float16)


def grad_scaler(device: torch.device, amp: bool) -> torch.amp.GradScaler | None:
    """The loss scaler float16 autocast needs on CUDA; ``None`` when AMP is off or on the CPU.

    Its state (scale, growth tracker) changes every step and is checkpointed with the run.
    """
    return torch.amp.GradScaler("cuda") if amp and device.type == "cuda" else None


def configure_threads(spec: RuntimeSpec | None) -> None:
    if spec is not None and spec.num_threads:
        torch.set_num_threads(spec.num_threads)
        os.environ.setdefault("OMP_NUM_THREADS", str(spec.num_threads))


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
