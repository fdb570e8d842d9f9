"""Datasets: readers for the embedded default and the user's own files, the deterministic
stratified split (``prepare``), and fast in-memory batching with optional augmentation."""

from autokd.data.prepare import PreparedData, Split, load_prepared, prepare_data, tensor_hash
from autokd.data.batches import Augmenter, BatchIterator

__all__ = [
    "Augmenter",
    "BatchIterator",
    "PreparedData",
    "Split",
    "load_prepared",
    "prepare_data",
    "tensor_hash",
]
