"""In-memory batching with a seeded, per-epoch shuffle, and tensor augmentation.

The datasets this project targets fit in memory, and slicing tensors is far faster than a
``DataLoader`` collating single samples. Shuffling uses a generator seeded from
``(seed, epoch)``, so a run resumed at epoch k sees exactly the batches it would have seen.
Each batch carries the samples' positions in the split: the teacher-output cache is looked
up by them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch
import torch.nn.functional as F

from autokd.spec.pipeline import AugmentSpec


IGNORE = -100  # a token target no loss counts (F.cross_entropy's ignore_index)


@dataclass
class Batch:
    x: torch.Tensor
    y: torch.Tensor
    idx: torch.Tensor  # positions in the split
    augmented: bool = False
    segments: torch.Tensor | None = None  # packed chat windows: the example of each position

    def to(self, device) -> "Batch":
        """Inputs, targets and segments on ``device`` (the positions stay where they are: caches index by them)."""
        seg = None if self.segments is None else self.segments.to(device)
        return Batch(self.x.to(device), self.y.to(device), self.idx, self.augmented, seg)

    @property
    def model_kwargs(self) -> dict:
        """What a language model's forward needs beside the ids (``segments`` of packed windows)."""
        return {} if self.segments is None else {"segments": self.segments}


def loss_count(y: torch.Tensor) -> int:
    """The targets a loss counts: every sample of a classifier, every token target but :data:`IGNORE`."""
    if y.is_floating_point():
        return int(y.numel())
    return int((y != IGNORE).sum())


class Augmenter:
    """Random shift (pad + crop), horizontal flip and Gaussian noise on a batch."""

    def __init__(self, spec: AugmentSpec):
        self.spec = spec

    @property
    def active(self) -> bool:
        s = self.spec
        return s.enabled and (s.crop_padding > 0 or s.hflip or s.noise_std > 0)

    def __call__(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        s = self.spec
        if not self.active:
            return x
        if x.ndim == 4:
            if s.crop_padding > 0:
                p = s.crop_padding
                n, _, h, w = x.shape
                padded = F.pad(x, (p, p, p, p))
                dy = torch.randint(0, 2 * p + 1, (n,), generator=gen)
                dx = torch.randint(0, 2 * p + 1, (n,), generator=gen)
                rows = (dy[:, None] + torch.arange(h)[None, :])  # n, h
                cols = (dx[:, None] + torch.arange(w)[None, :])  # n, w
                bidx = torch.arange(n)[:, None, None]
                x = padded.permute(0, 2, 3, 1)[bidx, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
            if s.hflip:
                flip = torch.rand(x.shape[0], generator=gen) < 0.5
                x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        if s.noise_std > 0:
            x = x + s.noise_std * torch.randn(x.shape, generator=gen)
        return x.contiguous()


class BatchIterator:
    """Iterate ``(x, y, idx)`` batches of a split; deterministic given (seed, epoch)."""

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        batch_size: int,
        shuffle: bool = True,
        seed: int = 0,
        augment: AugmentSpec | None = None,
        drop_last: bool = False,
        segments: torch.Tensor | None = None,
    ):
        self.x, self.y, self.segments = x, y, segments
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.augmenter = Augmenter(augment) if augment is not None else None
        self.drop_last = drop_last
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        n = len(self.y)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[Batch]:
        n = len(self.y)
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(n, generator=gen) if self.shuffle else torch.arange(n)
        aug = self.augmenter if (self.augmenter is not None and self.augmenter.active) else None
        for start in range(0, n, self.batch_size):
            idx = order[start : start + self.batch_size]
            if self.drop_last and len(idx) < self.batch_size:
                break
            x = self.x[idx]
            if aug is not None:
                x = aug(x, gen)
            seg = None if self.segments is None else self.segments[idx]
            yield Batch(x=x, y=self.y[idx], idx=idx, augmented=aug is not None, segments=seg)
