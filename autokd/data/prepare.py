"""The ``prepare`` step: read a source, split it (stratified, seeded), normalise with
training-split statistics, and write tensors plus a content hash.

Layout of a prepared folder::

    train.safetensors  val.safetensors  test.safetensors   (x float32, y int64, index int64)
    meta.json          num_classes, input_shape, class_names, counts, normalisation, sha256
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file

from autokd.data.readers import read_dataset
from autokd.spec.pipeline import DataSpec
from autokd.utils.io import atomic_write_json, save_safetensors

SPLITS = ("train", "val", "test")


@dataclass
class Split:
    x: torch.Tensor
    y: torch.Tensor
    index: torch.Tensor  # position in the source dataset (for lineage and debugging)
    segments: torch.Tensor | None = None  # packed chat windows: the example of each position (0: padding)

    def __len__(self) -> int:
        return int(self.y.shape[0])


@dataclass
class PreparedData:
    train: Split
    val: Split
    test: Split
    meta: dict[str, Any]

    @property
    def num_classes(self) -> int:
        return int(self.meta["num_classes"])

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.meta["input_shape"])

    @property
    def sha256(self) -> str:
        return self.meta["sha256"]


def tensor_hash(*tensors: torch.Tensor) -> str:
    """sha256 over dtype, shape and bytes of each tensor, in order."""
    h = hashlib.sha256()
    for t in tensors:
        t = t.detach().cpu().contiguous()
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def _stratified_split(y: np.ndarray, spec: DataSpec) -> dict[str, np.ndarray]:
    from sklearn.model_selection import train_test_split  # lazy: search workers only load prepared data

    idx = np.arange(len(y))
    if spec.max_samples is not None and spec.max_samples < len(y):
        idx, _ = train_test_split(idx, train_size=spec.max_samples, stratify=y, random_state=spec.seed)
        idx = np.sort(idx)
    s = spec.split
    rest_idx, test_idx = train_test_split(idx, test_size=s.test, stratify=y[idx], random_state=spec.seed)
    if s.val > 0:
        val_frac = s.val / (s.train + s.val)
        train_idx, val_idx = train_test_split(
            rest_idx, test_size=val_frac, stratify=y[rest_idx], random_state=spec.seed + 1
        )
    else:
        train_idx, val_idx = rest_idx, np.array([], dtype=np.int64)
    return {"train": np.sort(train_idx), "val": np.sort(val_idx), "test": np.sort(test_idx)}


def prepare_data(spec: DataSpec, out_dir: str | Path, root: str | Path | None = None) -> PreparedData:
    """Read, split, normalise and write the dataset described by ``spec``."""
    out_dir = Path(out_dir)
    path = spec.path
    if path is not None and root is not None and not Path(path).is_absolute():
        path = str(Path(root) / path)
    raw = read_dataset(spec.source, path, **spec.options)
    x = np.asarray(raw.x, dtype=np.float32)
    y = np.asarray(raw.y, dtype=np.int64)
    counts = np.bincount(y)
    num_classes = int(max(len(raw.class_names), y.max() + 1))
    if (counts[counts > 0] < 3).any():
        raise ValueError("every class needs at least 3 samples for a stratified train/val/test split")
    parts = _stratified_split(y, spec)

    norm: dict[str, Any] = {"enabled": spec.normalize}
    if spec.normalize:
        xt = x[parts["train"]]
        axes = (0, 2, 3) if x.ndim == 4 else (0,)
        mean = xt.mean(axis=axes, dtype=np.float64).astype(np.float32)
        std = np.maximum(xt.std(axis=axes, dtype=np.float64), 1e-6).astype(np.float32)
        shape = (1, -1, 1, 1) if x.ndim == 4 else (1, -1)
        x = (x - mean.reshape(shape)) / std.reshape(shape)
        norm.update(mean=mean.tolist(), std=std.tolist())

    splits = {}
    for name in SPLITS:
        ids = parts[name]
        splits[name] = Split(
            x=torch.from_numpy(np.ascontiguousarray(x[ids])),
            y=torch.from_numpy(y[ids]),
            index=torch.from_numpy(ids.astype(np.int64)),
        )
    digest = tensor_hash(*[t for n in SPLITS for t in (splits[n].x, splits[n].y)])
    meta = {
        "source": spec.source,
        "path": spec.path,
        "num_classes": num_classes,
        "class_names": list(raw.class_names),
        "input_shape": list(x.shape[1:]),
        "counts": {n: len(splits[n]) for n in SPLITS},
        "class_counts": {n: np.bincount(splits[n].y.numpy(), minlength=num_classes).tolist() for n in SPLITS},
        "normalization": norm,
        "sha256": digest,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in SPLITS:
        s = splits[name]
        save_safetensors(out_dir / f"{name}.safetensors", {"x": s.x, "y": s.y, "index": s.index},
                         metadata={"sha256": digest})
    atomic_write_json(out_dir / "meta.json", meta)
    return PreparedData(train=splits["train"], val=splits["val"], test=splits["test"], meta=meta)


def load_prepared(data_dir: str | Path) -> PreparedData:
    """Load a prepared folder; the content hash is checked against meta.json."""
    data_dir = Path(data_dir)
    meta_path = data_dir / "meta.json"
    if not meta_path.exists():
        raise FileNotFoundError(f"no prepared data in {data_dir} (run the prepare stage first)")
    meta = json.loads(meta_path.read_text())
    splits = {}
    for name in SPLITS:
        t = load_file(str(data_dir / f"{name}.safetensors"))
        splits[name] = Split(x=t["x"], y=t["y"], index=t["index"])
    digest = tensor_hash(*[t for n in SPLITS for t in (splits[n].x, splits[n].y)])
    if digest != meta["sha256"]:
        raise ValueError(f"prepared data in {data_dir} does not match its recorded hash; re-run prepare")
    return PreparedData(train=splits["train"], val=splits["val"], test=splits["test"], meta=meta)
