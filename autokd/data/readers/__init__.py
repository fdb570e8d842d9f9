"""On-disk dataset readers.

Every reader turns one on-disk dataset format into a :class:`RawDataset`:
plain numpy arrays plus class names, with no torch dependency.  Readers only
read local files; nothing here ever downloads anything.

Conventions shared by all readers:

* ``x`` is ``float32``.  Images have shape ``(N, C, H, W)`` with values in
  ``[0, 1]`` (``uint8 / 255``); tabular data has shape ``(N, D)``.
* ``y`` is ``int64`` with shape ``(N,)`` and values in ``0..K-1`` where
  ``K == len(class_names)``.
* Every problem with the input (missing path, bad magic number, truncated
  file, non-numeric CSV cell, unknown option, ...) raises
  :class:`DataReadError` with a message naming the file and what is wrong.

Sources (keys of :data:`READERS`), one module per format family:

``digits``       scikit-learn's bundled 8x8 digits (``path`` is ignored).  :mod:`.builtin`
``mnist_idx``    MNIST / Fashion-MNIST IDX files, optionally gzipped.  :mod:`.mnist_idx`
``cifar10``      CIFAR-10 "binary version" (``data_batch_*.bin``, ``test_batch.bin``).  :mod:`.cifar`
``cifar100``     CIFAR-100 "binary version" (``train.bin``, ``test.bin``).  :mod:`.cifar`
``image_folder`` ``path/<class_name>/*.png|jpg|jpeg|bmp|gif``.  :mod:`.image_folder`
``csv``          a CSV file with a header row and a label column.  :mod:`.tabular`
``npz``          a numpy ``.npz`` archive (loaded with ``allow_pickle=False``).  :mod:`.tabular`

The registry, the error type and the shared checks live in :mod:`.base`.  The modules
import each other relatively and nothing outside numpy, Pillow (lazily) and scikit-learn
(lazily), so the package loads without torch or the rest of ``autokd``.

Use :func:`read_dataset` as the entry point::

    ds = read_dataset("mnist_idx", "data/mnist", subset="train")
"""

from __future__ import annotations

from .base import READERS, DataReadError, RawDataset, Reader, get_reader, read_dataset, register_reader

# importing a format module registers its readers (in this order in READERS)
from .builtin import read_digits
from .mnist_idx import read_mnist_idx
from .cifar import CIFAR10_CLASS_NAMES, read_cifar10, read_cifar100
from .image_folder import read_image_folder
from .tabular import read_csv, read_npz

__all__ = [
    "CIFAR10_CLASS_NAMES",
    "DataReadError",
    "RawDataset",
    "READERS",
    "Reader",
    "read_cifar10",
    "read_cifar100",
    "read_csv",
    "get_reader",
    "read_dataset",
    "read_digits",
    "read_image_folder",
    "read_mnist_idx",
    "read_npz",
    "register_reader",
]
