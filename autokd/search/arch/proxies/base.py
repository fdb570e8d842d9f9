"""The proxy registry, the batch and teacher signals every proxy sees, and shared helpers
(scoring mode, BatchNorm statistics kept, Gram matrices, CE gradients)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from autokd.models.registry import forward_with_features

BASELINES = ("params", "flops")
# activations whose pre-activation sign gives NASWOT's binary code
_RELU_LIKE = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.GELU, nn.Tanh)
_BN = (nn.BatchNorm1d, nn.BatchNorm2d)


@dataclass
class ProxyBatch:
    """The batch every proxy sees: inputs, labels and the number of classes."""

    x: torch.Tensor
    y: torch.Tensor
    num_classes: int

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])

    def __len__(self) -> int:
        return int(self.x.shape[0])


@dataclass
class TeacherSignals:
    """What the DisWOT terms need from the teacher, computed once per batch and reused
    for every candidate: the relation Gram matrix of its last feature map (B×B) and the
    class Gram matrix of its final layer's CE gradient (K×K)."""

    relation_gram: torch.Tensor
    class_gram: torch.Tensor
    state: str = "trained"


@dataclass(frozen=True)
class Proxy:
    name: str
    fn: Callable[..., float]
    higher_is_better: bool
    needs_teacher: bool
    log_scale: bool  # heavy-tailed positive values: z-scored after log
    summary: str
    paper: str
    tasks: tuple[str, ...] = ("classify",)  # the pipeline tasks whose students it scores


PROXIES: dict[str, Proxy] = {}


def register_proxy(
    name: str, *, higher_is_better: bool, needs_teacher: bool = False, log_scale: bool = False, paper: str = "",
    tasks: tuple[str, ...] = ("classify",),
):
    """Register ``fn(model, batch[, teacher]) -> float`` under ``name``; ``tasks``: the pipeline
    tasks whose students it is defined for (a language model's batch is token windows)."""

    def deco(fn):
        if name in PROXIES:
            raise ValueError(f"proxy {name!r} registered twice")
        summary = (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else ""
        PROXIES[name] = Proxy(name, fn, higher_is_better, needs_teacher, log_scale, summary, paper, tuple(tasks))
        return fn

    return deco


def available_proxies() -> list[str]:
    return list(PROXIES)


def get_proxy(name: str) -> Proxy:
    if name not in PROXIES:
        raise KeyError(f"unknown proxy {name!r}; available: {', '.join(PROXIES)}")
    return PROXIES[name]


def compute_proxy(name: str, model: nn.Module, batch: ProxyBatch, teacher: TeacherSignals | None = None) -> float:
    proxy = get_proxy(name)
    if proxy.needs_teacher:
        if teacher is None:
            raise ValueError(f"proxy {name!r} needs the teacher's signals")
        return float(proxy.fn(model, batch, teacher))
    return float(proxy.fn(model, batch))


# ------------------------------------------------------------------------------ helpers


class scoring_mode:
    """Train mode (batch statistics) with dropout off; restores each module's mode after."""

    def __init__(self, model: nn.Module, train: bool = True):
        self.model, self.train = model, train

    def __enter__(self):
        self.modes = {m: m.training for m in self.model.modules()}
        self.model.train(self.train)
        for m in self.model.modules():
            if isinstance(m, nn.Dropout):
                m.eval()
        return self.model

    def __exit__(self, *exc):
        for m, mode in self.modes.items():
            m.training = mode


class _keep_bn_stats:
    """Train-mode forwards update BatchNorm running statistics; put them back after."""

    def __init__(self, model: nn.Module):
        self.model = model

    def __enter__(self):
        self.saved = [(m, {k: v.clone() for k, v in m.state_dict().items()})
                      for m in self.model.modules() if isinstance(m, _BN)]

    def __exit__(self, *exc):
        for m, state in self.saved:
            m.load_state_dict(state)


def last_feature_map(features, logits: torch.Tensor) -> torch.Tensor:
    """The last spatial feature map a model exposes (pre-pooling); for models without maps
    (MLP) its last feature; the logits for models that expose no features."""
    maps = [f for f in features.values() if f.dim() >= 3]
    if maps:
        return maps[-1]
    if features:
        return list(features.values())[-1]
    return logits


def final_layer(model: nn.Module) -> nn.Linear:
    """The last ``nn.Linear`` registered in the model (the classifier head)."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"{type(model).__name__} has no nn.Linear classifier for the semantic term")
    return linears[-1]


def normalized_gram(f: torch.Tensor) -> torch.Tensor:
    """Row-L2-normalised Gram matrix of ``f`` flattened to rows: G = A Aᵀ, G_i ← G_i / ‖G_i‖₂."""
    a = f.reshape(f.shape[0], -1).double()
    g = a @ a.t()
    return F.normalize(g, p=2, dim=1)


def gram_distance(g_t: torch.Tensor, g_s: torch.Tensor) -> float:
    """‖G_t − G_s‖²_F / n² for n×n matrices."""
    n = g_t.shape[0]
    return float(((g_t.double() - g_s.double()) ** 2).sum() / (n * n))


def cross_entropy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean CE of class logits ``(B, K)``, or of next-token logits ``(B, T, V)`` against targets
    ``(B, T)`` over every target that counts (``-100``: ignored, as chat data's prompt tokens)."""
    if logits.dim() == 3:
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), ignore_index=-100)
    return F.cross_entropy(logits, y)


def final_layer_grad(model: nn.Module, batch: ProxyBatch) -> torch.Tensor:
    """∂L_CE/∂W of the final layer after one forward/backward on ``batch`` (no ``.grad`` left)."""
    head = final_layer(model)
    needed = head.weight.requires_grad
    head.weight.requires_grad_(True)
    try:
        with torch.enable_grad():
            loss = cross_entropy(model(batch.x), batch.y)
            (g,) = torch.autograd.grad(loss, [head.weight])
    finally:
        head.weight.requires_grad_(needed)
    return g.detach()


def teacher_signals(teacher: nn.Module, batch: ProxyBatch, state: str = "trained") -> TeacherSignals:
    """Run the teacher once on ``batch`` (eval mode): relation Gram and class Gram."""
    modes = {m: m.training for m in teacher.modules()}
    teacher.eval()
    try:
        with torch.no_grad():
            logits, feats = forward_with_features(teacher, batch.x)
        rel = normalized_gram(last_feature_map(feats, logits))
        cls = normalized_gram(final_layer_grad(teacher, batch))
    finally:
        for m, mode in modes.items():
            m.training = mode
    return TeacherSignals(relation_gram=rel, class_gram=cls, state=state)


def _params(model: nn.Module) -> list[torch.Tensor]:
    return [p for p in model.parameters() if p.requires_grad]


def _ce_grads(model: nn.Module, batch: ProxyBatch) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    params = _params(model)
    with scoring_mode(model), _keep_bn_stats(model):
        loss = cross_entropy(model(batch.x), batch.y)
        grads = torch.autograd.grad(loss, params, allow_unused=True)
    grads = [torch.zeros_like(p) if g is None else g.detach() for p, g in zip(params, grads)]
    return params, grads
