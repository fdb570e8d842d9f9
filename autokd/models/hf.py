"""Causal language models from a local Hugging Face folder (``hf_causal_lm``), offline.

``model: {name: hf_causal_lm, params: {path: models/my-gpt2}}`` loads the folder's
``config.json`` and ``model.safetensors`` with ``transformers`` (an optional dependency:
``pip install -e ".[hf]"``): ``local_files_only`` (nothing is downloaded), ``use_safetensors``
(a pickled ``pytorch_model.bin`` is refused, never unpickled) and no remote code. The model's
vocabulary must be the pipeline's (its tokenizer: ``data.tokenizer: {kind: file, path: <the
folder>}``), and the context must fit its position embeddings. A model whose embedding is padded
past the tokenizer (Qwen2.5's 151,936 rows for 151,665 tokens; padding to a multiple of 64 or 128
is common) is used with its logits cut to the tokenizer's size: the padded rows are no token, so
they are never predicted, sampled or distilled, and the artifact's manifest says so
(``vocabulary``). A model with fewer rows than the tokenizer's tokens is refused.

The wrapper gives the same interface as :class:`autokd.models.decoder.DecoderLM`: logits
``(B, T, V)``, the feature aliases ``embed``, ``block{i}`` and ``layers`` (the model's hidden
states), ``num_layers`` and ``generate`` (greedy or sampled, with the model's key/value cache).
"""

from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from autokd.models.registry import ModelBuildError, register_model
from autokd.models.segments import segment_positions


class HFParams(BaseModel):
    """Where the model lives."""

    model_config = ConfigDict(extra="forbid")
    path: str = Field(..., min_length=1, description="a local folder with config.json and model.safetensors")


def folder_config(path: str | Path) -> dict:
    """The folder's ``config.json`` (vocabulary size, positions), read without transformers."""
    p = Path(path) / "config.json"
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError) as exc:
        raise ModelBuildError(f"hf_causal_lm: no readable config.json in {path} ({exc})") from None


def max_positions(config: dict) -> int | None:
    for key in ("max_position_embeddings", "n_positions", "n_ctx", "max_sequence_length"):
        if isinstance(config.get(key), int):
            return int(config[key])
    return None


class HFCausalLM(nn.Module):
    """A ``transformers`` causal LM behind autokd's language-model interface."""

    def __init__(self, model: nn.Module, context: int, vocab_size: int | None = None):
        super().__init__()
        self.model = model
        self.context = int(context)
        rows = int(model.config.vocab_size)
        self.vocab_size = rows if vocab_size is None else int(vocab_size)
        #: why the logits are cut (a padded embedding), recorded in the artifact's manifest
        self.vocab_note = (f"config.json has {rows} vocabulary rows, the tokenizer {self.vocab_size} tokens: logits "
                           f"cut to {self.vocab_size} (the {rows - self.vocab_size} padded rows are no token)"
                           if rows > self.vocab_size else None)
        import inspect

        # transformers 5.x renames forward(past_key_values=…) to forward(cache=…)
        params = inspect.signature(model.forward).parameters
        self._cache_arg = "cache" if "cache" in params else "past_key_values"

    @property
    def num_layers(self) -> int:
        return int(self.model.config.num_hidden_layers)

    def _cut(self, logits: Tensor) -> Tensor:
        return logits[..., :self.vocab_size] if self.vocab_note else logits

    def forward(self, idx: Tensor, return_features: bool = False, segments: Tensor | None = None):
        # packed windows: positions restarting per example, and no attention mask, make transformers
        # build its block-diagonal causal mask (masking_utils.find_packed_sequence_indices)
        extra = {} if segments is None else {"position_ids": segment_positions(segments)}
        out = self.model(input_ids=idx, output_hidden_states=return_features, use_cache=False, **extra)
        if not return_features:
            return self._cut(out.logits)
        hidden = out.hidden_states  # embeddings, then each layer (the last after the final norm in some)
        feats: OrderedDict[str, Tensor] = OrderedDict(embed=hidden[0])
        for i, h in enumerate(hidden[1:]):
            feats[f"block{i}"] = h
        feats["layers"] = torch.stack(list(hidden), dim=1)
        return self._cut(out.logits), feats

    @torch.no_grad()
    def generate(self, prompt: Tensor, max_new_tokens: int, *, temperature: float = 0.0, top_k: int = 0,
                 generator: torch.Generator | None = None) -> Tensor:
        """As :meth:`autokd.models.decoder.DecoderLM.generate`, with the model's own cache."""
        from autokd.models.sampling import generate

        def start(prompt: Tensor):
            res = self.model(input_ids=prompt, use_cache=True)
            return self._cut(res.logits), res.past_key_values

        def step(token: Tensor, past):
            res = self.model(input_ids=token, **{self._cache_arg: past}, use_cache=True)
            return self._cut(res.logits), res.past_key_values

        return generate(self, prompt, max_new_tokens, start, step,
                        full=lambda out, past: out.shape[1] >= self.context + 1,
                        temperature=temperature, top_k=top_k, generator=generator)


@register_model("hf_causal_lm", HFParams, task="lm")
def build_hf(p: HFParams, input_shape, num_classes):
    """A causal language model from a local Hugging Face folder (safetensors, offline; needs transformers)."""
    config = folder_config(p.path)
    vocab = config.get("vocab_size")
    if not isinstance(vocab, int) or vocab < num_classes:
        raise ModelBuildError(f"hf_causal_lm {p.path}: its vocabulary has {vocab} tokens (config.json), the "
                              f"pipeline's tokenizer {num_classes}: teacher and student must share one vocabulary "
                              "(a model may have more rows than the tokenizer, padding, not fewer)")
    positions = max_positions(config)
    if positions is not None and input_shape[0] > positions:
        raise ModelBuildError(f"hf_causal_lm {p.path}: context {input_shape[0]} exceeds its {positions} positions")
    if not (Path(p.path) / "model.safetensors").exists() and not list(Path(p.path).glob("model-*.safetensors")):
        raise ModelBuildError(f"hf_causal_lm {p.path}: no model.safetensors (pickled weights are not loaded)")
    try:
        from transformers import AutoModelForCausalLM
    except ImportError:
        raise ModelBuildError("hf_causal_lm needs transformers: pip install -e '.[hf]'") from None
    model = AutoModelForCausalLM.from_pretrained(p.path, local_files_only=True, use_safetensors=True,
                                                 trust_remote_code=False)
    return HFCausalLM(model, context=int(input_shape[0]), vocab_size=num_classes)
