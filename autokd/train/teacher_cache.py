"""The teacher-output cache: the teacher's logits on the training split, computed once.

Stored as safetensors with the hash of the prepared data it was computed on and the
teacher's own hash; a reader checks both, so a cached output is never paired with a
different input. Augmented batches never use the cache (see ``DistillObjective``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from torch import nn

from autokd.data.prepare import Split
from autokd.utils.io import save_safetensors

CACHE_NAME = "train_logits.safetensors"


class TeacherCacheMismatch(RuntimeError):
    """The cache was computed on other data (or by another teacher) than the one in use."""


@dataclass
class TeacherOutputs:
    logits: torch.Tensor  # (N_train, K), float32, row i = split position i
    data_sha256: str
    teacher_sha256: str

    def lookup(self, idx: torch.Tensor) -> torch.Tensor:
        return self.logits[idx]

    def check(self, data_sha256: str, n_rows: int, teacher_sha256: str | None = None) -> None:
        if self.data_sha256 != data_sha256:
            raise TeacherCacheMismatch(
                f"teacher outputs were computed on data {self.data_sha256[:12]}, "
                f"but the prepared data is {data_sha256[:12]}; re-run train_teacher"
            )
        if self.logits.shape[0] != n_rows:
            raise TeacherCacheMismatch(
                f"teacher outputs have {self.logits.shape[0]} rows, the training split has {n_rows}"
            )
        if teacher_sha256 is not None and teacher_sha256 != self.teacher_sha256:
            raise TeacherCacheMismatch("teacher outputs were computed by a different teacher; re-run train_teacher")


@torch.no_grad()
def compute_teacher_logits(teacher: nn.Module, split: Split, device: torch.device, batch_size: int = 512) -> torch.Tensor:
    """The teacher's logits (eval mode, no augmentation) for every row of ``split``, in order."""
    teacher.eval().to(device)
    out = []
    for start in range(0, len(split), batch_size):
        out.append(teacher(split.x[start : start + batch_size].to(device)).float().cpu())
    return torch.cat(out) if out else torch.zeros(0)


def save_teacher_outputs(path: str | Path, outputs: TeacherOutputs) -> None:
    save_safetensors(path, {"logits": outputs.logits},
                     metadata={"data_sha256": outputs.data_sha256, "teacher_sha256": outputs.teacher_sha256})


def load_teacher_outputs(path: str | Path) -> TeacherOutputs:
    with safe_open(str(path), framework="pt") as fh:
        meta = fh.metadata()
        logits = fh.get_tensor("logits")
    return TeacherOutputs(logits=logits, data_sha256=meta["data_sha256"], teacher_sha256=meta["teacher_sha256"])
