"""Model families built from a spec.

Every model's ``forward(x)`` returns logits; ``forward(x, return_features=True)`` returns
``(logits, features)`` where ``features`` is an ordered dict of named intermediate tensors
(later stages distill through them). Families are chosen by name from a registry; a user's
own ``nn.Module`` can be named by import path (``package.module:ClassName``).
"""

from autokd.models.registry import (
    MODELS,
    ModelBuildError,
    build_model,
    count_params,
    feature_names,
    forward_with_features,
    register_model,
)
from autokd.models import mlp as _mlp  # noqa: F401  (registers "mlp")
from autokd.models import cnn as _cnn  # noqa: F401  (registers "cnn", "resnet_s1")
from autokd.models import decoder as _decoder  # noqa: F401  (registers "decoder", a language model)
from autokd.models import hf as _hf  # noqa: F401  (registers "hf_causal_lm": a local Hugging Face folder)

__all__ = [
    "MODELS",
    "ModelBuildError",
    "build_model",
    "count_params",
    "feature_names",
    "forward_with_features",
    "register_model",
]
