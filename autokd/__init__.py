"""autokd: reproducible, automatic knowledge distillation.

The library is importable piece by piece: ``autokd.spec`` (pydantic specs),
``autokd.data``, ``autokd.models``, ``autokd.losses`` (``create``/``available``),
``autokd.train`` (the training loop), ``autokd.evaluate``, ``autokd.lineage``,
``autokd.search``; ``autokd.stages`` are the DVC stage entry points and ``autokd.cli``
the command line.
"""

__version__ = "0.1.0"
