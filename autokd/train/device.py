"""Device and precision choice: ``device: auto`` picks CUDA (with AMP) when present;
``runtime.precision`` picks the autocast dtype (bf16 on CPU and CUDA, fp16 on CUDA) and
``runtime.teacher_precision`` the dtype of a distilling teacher's weights."""

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


DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}

#: what the trainer's ``amp`` argument may be: off (False/None), float16 autocast (True), or a dtype
Precision = bool | torch.dtype | None


def autocast_dtype(spec: RuntimeSpec | None, device: torch.device) -> torch.dtype | None:
    """The training autocast dtype ``runtime.precision`` names (``auto``: float16 where AMP is
    on, i.e. on CUDA, else none); ``None`` means fp32. fp16 on a CPU is refused (no loss
    scaler there: small gradients would underflow), so a CPU run uses bf16 or fp32."""
    name = spec.precision if spec else "auto"
    if name == "auto":
        return torch.float16 if use_amp(spec, device) else None
    if name == "fp16" and device.type != "cuda":
        raise RuntimeError(f"runtime.precision fp16 needs CUDA (the run is on {device.type}); use bf16 or fp32")
    return DTYPES[name]


def teacher_dtype(spec: RuntimeSpec | None, device: torch.device) -> torch.dtype:
    """The dtype of a distilling teacher's weights (``runtime.teacher_precision``; ``same``: fp32)."""
    name = spec.teacher_precision if spec else "same"
    if name == "fp16" and device.type != "cuda":
        raise RuntimeError(f"runtime.teacher_precision fp16 needs CUDA (the run is on {device.type}); use bf16")
    return DTYPES.get(name) or torch.float32


def _dtype(amp: Precision) -> torch.dtype | None:
    if amp is None or amp is False:
        return None
    return torch.float16 if amp is True else amp


def autocast(device: torch.device, enabled: Precision):
    """Autocast at ``enabled``'s dtype (``True``: float16, the older AMP switch); none when off or fp32."""
    dtype = _dtype(enabled)
    if dtype is None or dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def grad_scaler(device: torch.device, amp: Precision) -> torch.amp.GradScaler | None:
    """The loss scaler float16 autocast needs on CUDA; ``None`` for bf16 (its exponent range is
    fp32's), when AMP is off, or on the CPU.

    Its state (scale, growth tracker) changes every step and is checkpointed with the run.
    """
    return torch.amp.GradScaler("cuda") if _dtype(amp) == torch.float16 and device.type == "cuda" else None


def configure_threads(spec: RuntimeSpec | None) -> None:
    if spec is not None and spec.num_threads:
        torch.set_num_threads(spec.num_threads)
        os.environ.setdefault("OMP_NUM_THREADS", str(spec.num_threads))


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
