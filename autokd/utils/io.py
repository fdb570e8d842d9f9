"""Atomic file writes: write to a temporary file in the same folder, fsync, rename."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator


@contextlib.contextmanager
def atomic_path(target: str | Path, fsync: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success it replaces ``target`` atomically.

    The rename is atomic, so a crashed process never leaves a torn file. ``fsync=True`` also
    flushes the data to disk before the rename (durable across power loss, ~8 ms here);
    per-epoch checkpoints skip it, and a reader that finds a damaged checkpoint starts over.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if fsync:
            with open(tmp_path, "rb") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def exclusive_lock(path: str | Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``path`` (created if missing) while the block runs: processes
    that make the same file take turns, and the second finds it made."""
    import fcntl

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def atomic_write_text(target: str | Path, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text)


def atomic_write_bytes(target: str | Path, data: bytes) -> None:
    with atomic_path(target, fsync=False) as tmp:
        tmp.write_bytes(data)


def atomic_write_json(target: str | Path, data: Any) -> None:
    atomic_write_text(target, json.dumps(data, indent=2, sort_keys=False) + "\n")


def canonical_safetensors(raw: bytes) -> bytes:
    """The same safetensors file with its JSON header's keys sorted.

    The serializer keeps ``__metadata__`` in a hash map whose order changes from process to
    process, so a file with two metadata keys came out as different bytes on every run (and
    a DVC output with it, different hashes). Only the header is rewritten: it is padded with
    spaces to a multiple of 8 bytes as the format asks, and the tensor data and its offsets
    (relative to the end of the header) are unchanged.
    """
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + raw[8 + n :]


def save_safetensors(target: str | Path, tensors: dict[str, Any], metadata: dict[str, str] | None = None,
                     fsync: bool = True) -> None:
    """Write ``tensors`` (torch) with ``metadata`` atomically and byte-for-byte reproducibly."""
    from safetensors.torch import save

    data = canonical_safetensors(save({k: v.contiguous() for k, v in tensors.items()}, metadata=metadata))
    with atomic_path(target, fsync=fsync) as tmp:
        tmp.write_bytes(data)


def state_tensors(module: Any) -> dict[str, Any]:
    """``module.state_dict()`` on the CPU with tied aliases dropped: a tensor reachable under
    several keys (a language model's head tied to its embedding) is kept once, under its first
    key. safetensors refuses shared tensors; an untied model gives exactly its state dict."""
    seen: set[tuple] = set()
    out = {}
    for key, value in module.state_dict().items():
        ident = (value.untyped_storage().data_ptr(), value.storage_offset(), tuple(value.shape),
                 tuple(value.stride()), value.dtype)
        if value.numel() and ident in seen:
            continue
        seen.add(ident)
        out[key] = value.detach().cpu().contiguous()
    return out


def load_state_tensors(module: Any, tensors: dict[str, Any]) -> None:
    """Load :func:`state_tensors` output: keys missing from ``tensors`` must be tied aliases of
    keys present (they share the loaded tensor); anything else missing or unexpected is an error."""
    missing, unexpected = module.load_state_dict(tensors, strict=False)
    untied: list[str] = []
    if missing:
        state = module.state_dict()
        present = {state[k].untyped_storage().data_ptr() for k in tensors if k in state}
        untied = [k for k in missing if state[k].untyped_storage().data_ptr() not in present]
    if unexpected or untied:
        raise RuntimeError(f"state does not fit the model: missing {untied}, unexpected {list(unexpected)}")
