"""The one training loop, checkpoints, objectives and the teacher-output cache."""

from autokd.train.device import autocast, configure_threads, resolve_device, seed_everything, use_amp
from autokd.train.trainer import (
    CrossEntropyObjective,
    NonFiniteLossError,
    TrainResult,
    evaluate_split,
    fingerprint,
    lr_factor,
    make_optimizer,
    train,
)

__all__ = [
    "CrossEntropyObjective",
    "NonFiniteLossError",
    "TrainResult",
    "autocast",
    "configure_threads",
    "evaluate_split",
    "fingerprint",
    "lr_factor",
    "make_optimizer",
    "resolve_device",
    "seed_everything",
    "train",
    "use_amp",
]
