"""``autokd export``: a trained student as safetensors, ONNX (checked with onnxruntime) or TorchScript, with a model card.

:func:`export_artifact` writes the model file, ``config.json``, the source manifest, the
check figures (``export.json``) and ``MODEL_CARD.md``; every export is loaded back in its own
runtime and compared with PyTorch on the test split (:mod:`.check`).
"""

from autokd.export.formats import FORMATS, ExportFailed
from autokd.export.run import DEFAULT_TOLERANCE, ExportCheckFailed, check_summary, export_artifact
from autokd.export.source import ExportInputError

__all__ = [
    "DEFAULT_TOLERANCE",
    "FORMATS",
    "ExportCheckFailed",
    "ExportFailed",
    "ExportInputError",
    "check_summary",
    "export_artifact",
]
