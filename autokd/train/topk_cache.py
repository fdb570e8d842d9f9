"""The language-model teacher cache: the teacher's top-k next-token distribution per position.

For every training window and position: the k largest log-probabilities of
``softmax(teacher_logits / T)`` (float16), their token ids (int16 while the vocabulary fits,
else int32) and the log of the remaining tail mass (float16). At k = 32 that is
32·2 + 32·2 + 2 = 130 bytes per token, against 4·V for dense float32 logits (4,096 B at V = 1,024).
Written once by the teacher's stage, read by ``distill`` without running the teacher; the reader
checks the data hash, the teacher hash and the temperature, like the classifier cache
(:mod:`autokd.train.teacher_cache`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from torch import nn

from autokd.losses.token import SparseTeacher, topk_teacher
from autokd.train.teacher_cache import TeacherCacheMismatch
from autokd.utils.io import save_safetensors

TOPK_NAME = "train_topk.safetensors"


@dataclass
class TopKTeacherOutputs:
    """Top-k log-probabilities ``(N, T, k)``, ids ``(N, T, k)``, log tail mass ``(N, T)``."""

    logprobs: torch.Tensor
    indices: torch.Tensor
    tail: torch.Tensor
    temperature: float
    data_sha256: str
    teacher_sha256: str

    @property
    def k(self) -> int:
        return int(self.logprobs.shape[-1])

    @property
    def bytes_per_token(self) -> float:
        n = self.tail.numel()
        size = sum(t.numel() * t.element_size() for t in (self.logprobs, self.indices, self.tail))
        return size / max(n, 1)

    def lookup(self, idx: torch.Tensor) -> SparseTeacher:
        """The cached teacher for windows ``idx`` (float32 log-probabilities)."""
        return SparseTeacher(self.logprobs[idx].float(), self.indices[idx].long(), self.tail[idx].float(),
                             self.temperature)

    def check(self, data_sha256: str, n_rows: int, teacher_sha256: str | None = None, k: int | None = None,
              temperature: float | None = None) -> None:
        """Refuse a cache made from other data, another teacher, another ``k`` (the requested
        ``top_k`` capped at the vocabulary) or another temperature."""
        if k is not None and self.k != k:
            raise TeacherCacheMismatch(f"the top-k teacher cache keeps k={self.k} tokens per position, the spec asks "
                                       f"for k={k} (distill.top_k); re-run its stage")
        if temperature is not None and self.temperature != float(temperature):
            raise TeacherCacheMismatch(f"the top-k teacher cache was made at temperature {self.temperature:g}, the "
                                       f"spec distils at {float(temperature):g}; re-run its stage")
        if self.data_sha256 != data_sha256:
            raise TeacherCacheMismatch(f"the top-k teacher cache was computed on data {self.data_sha256[:12]}, "
                                       f"but the prepared data is {data_sha256[:12]}; re-run its stage")
        if self.logprobs.shape[0] != n_rows:
            raise TeacherCacheMismatch(f"the top-k teacher cache has {self.logprobs.shape[0]} windows, "
                                       f"the training split has {n_rows}")
        if teacher_sha256 is not None and teacher_sha256 != self.teacher_sha256:
            raise TeacherCacheMismatch("the top-k teacher cache was computed by a different teacher; re-run its stage")


@torch.no_grad()
def compute_topk(teacher: nn.Module, inputs: torch.Tensor, k: int, temperature: float, device: torch.device,
                 data_sha256: str, teacher_sha256: str, batch_size: int = 32,
                 segments: torch.Tensor | None = None) -> TopKTeacherOutputs:
    """The teacher's top-k at every position of ``inputs`` ``(N, T)`` (eval mode; ``segments``:
    packed windows, each example seen alone)."""
    teacher.eval().to(device)
    vocab = None
    lps, ids, tails = [], [], []
    for start in range(0, len(inputs), batch_size):
        kw = {} if segments is None else {"segments": segments[start:start + batch_size].to(device)}
        logits = teacher(inputs[start:start + batch_size].to(device), **kw).float()  # a bf16 teacher: fp32 top-k
        vocab = logits.shape[-1]
        sparse = topk_teacher(logits, k, temperature)
        lps.append(sparse.logprobs.half().cpu())
        ids.append(sparse.indices.cpu())
        tails.append(sparse.tail.half().cpu())
    id_dtype = torch.int16 if vocab is not None and vocab <= torch.iinfo(torch.int16).max + 1 else torch.int32
    return TopKTeacherOutputs(torch.cat(lps), torch.cat(ids).to(id_dtype), torch.cat(tails), float(temperature),
                              data_sha256, teacher_sha256)


def save_topk(path: str | Path, cache: TopKTeacherOutputs) -> None:
    save_safetensors(path, {"logprobs": cache.logprobs, "indices": cache.indices, "tail": cache.tail},
                     metadata={"data_sha256": cache.data_sha256, "teacher_sha256": cache.teacher_sha256,
                               "temperature": repr(cache.temperature), "k": str(cache.k)})


def load_topk(path: str | Path) -> TopKTeacherOutputs:
    with safe_open(str(path), framework="pt") as fh:
        meta = fh.metadata()
        tensors = {name: fh.get_tensor(name) for name in ("logprobs", "indices", "tail")}
    if "k" in meta and int(meta["k"]) != tensors["logprobs"].shape[-1]:
        raise TeacherCacheMismatch(f"{path}: its metadata says k={meta['k']} but it holds "
                                   f"{tensors['logprobs'].shape[-1]} tokens per position")
    return TopKTeacherOutputs(tensors["logprobs"], tensors["indices"], tensors["tail"], float(meta["temperature"]),
                              meta["data_sha256"], meta["teacher_sha256"])
