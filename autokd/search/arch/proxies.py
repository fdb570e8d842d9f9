"""Training-free proxies: a registry of documented functions of ``(model, batch[, teacher])``.

Every proxy returns one float and says whether higher is better. The ranking orients
them (a distance is negated) before ranking or z-scoring, so each is used the right way.

Initialization (the "documented initialization" every score is computed at):
- the **student** is freshly built by its family's own initializer (cnn: Kaiming-normal
  convolutions, BatchNorm weight 1 and bias 0; mlp/linear: PyTorch defaults) with the torch
  seed fixed per candidate (:func:`autokd.search.arch.run.candidate_seed`). Proxies run
  it in *train* mode (BatchNorm normalises with the batch's statistics) with dropout off;
- the **teacher** is the pipeline's trained teacher in *eval* mode (running statistics), or
  with ``teacher: init`` in the space, its architecture at initialization (seeded), eval mode;
- SynFlow and Zen-score work on a private copy (SynFlow: |θ| in float64, BatchNorm at its
  initial statistics; Zen: Gaussian re-initialisation, as their papers define them).

No proxy changes the model it is given (no weights, no ``.grad``), so the order in which
proxies run does not matter.

Registered proxies:

=================  ======  ====================================================================
name               better  definition
=================  ======  ====================================================================
diswot_relation    lower   ‖G_t − G_s‖²_F / B², G = row-L2-normalised B×B Gram matrix of the
                           last feature map (Dong et al., DisWOT, CVPR 2023; Tung & Mori 2019)
diswot_semantic    lower   ‖C_t − C_s‖²_F / K², C = row-L2-normalised K×K Gram matrix of the
                           final layer's weight gradient after one CE backward pass (DisWOT's
                           semantic term in a width-independent form)
naswot             higher  log|K_H|, K_H = Σ_ReLU c cᵀ + (1−c)(1−c)ᵀ over binary ReLU codes
                           (Mellor et al., ICML 2021)
synflow            higher  Σ |θ ⊙ ∂R/∂θ|, R = 1ᵀ f_|θ|(1) (Tanaka et al., NeurIPS 2020)
snip               higher  Σ |θ ⊙ ∂L_CE/∂θ| (Lee et al., ICLR 2019)
grad_norm          higher  ‖∂L_CE/∂θ‖₂ over all parameters (Abdelfattah et al., ICLR 2021)
zen                higher  log E‖f(x) − f(x + αε)‖₁ + Σ_BN log √(mean σ²) (Lin et al., ICCV 2021)
params             higher  trainable parameter count (baseline every ranking reports)
flops              higher  multiply-accumulates at batch 1 (baseline every ranking reports)
=================  ======  ====================================================================
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from autokd.evaluate.flops import count_macs
from autokd.models.registry import count_params, forward_with_features

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


PROXIES: dict[str, Proxy] = {}


def register_proxy(
    name: str, *, higher_is_better: bool, needs_teacher: bool = False, log_scale: bool = False, paper: str = ""
):
    """Register ``fn(model, batch[, teacher]) -> float`` under ``name``."""

    def deco(fn):
        if name in PROXIES:
            raise ValueError(f"proxy {name!r} registered twice")
        summary = (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else ""
        PROXIES[name] = Proxy(name, fn, higher_is_better, needs_teacher, log_scale, summary, paper)
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


def final_layer_grad(model: nn.Module, batch: ProxyBatch) -> torch.Tensor:
    """∂L_CE/∂W of the final layer after one forward/backward on ``batch`` (no ``.grad`` left)."""
    head = final_layer(model)
    needed = head.weight.requires_grad
    head.weight.requires_grad_(True)
    try:
        with torch.enable_grad():
            loss = F.cross_entropy(model(batch.x), batch.y)
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
        loss = F.cross_entropy(model(batch.x), batch.y)
        grads = torch.autograd.grad(loss, params, allow_unused=True)
    grads = [torch.zeros_like(p) if g is None else g.detach() for p, g in zip(params, grads)]
    return params, grads


# ------------------------------------------------------------------------------ proxies


@register_proxy("diswot_relation", higher_is_better=False, needs_teacher=True,
                paper="Dong, Li, Wei. DisWOT. CVPR 2023 (relation term); Tung & Mori. SP. ICCV 2019")
def diswot_relation(model: nn.Module, batch: ProxyBatch, teacher: TeacherSignals) -> float:
    """DisWOT relation distance: ‖G_t − G_s‖²_F / B² of row-normalised batch Gram matrices."""
    with torch.no_grad(), scoring_mode(model), _keep_bn_stats(model):
        logits, feats = forward_with_features(model, batch.x)
        g_s = normalized_gram(last_feature_map(feats, logits))
    return gram_distance(teacher.relation_gram, g_s)


@register_proxy("diswot_semantic", higher_is_better=False, needs_teacher=True,
                paper="Dong, Li, Wei. DisWOT. CVPR 2023 (semantic term, width-independent K×K form)")
def diswot_semantic(model: nn.Module, batch: ProxyBatch, teacher: TeacherSignals) -> float:
    """DisWOT semantic distance: ‖C_t − C_s‖²_F / K² of class Gram matrices of head gradients."""
    with scoring_mode(model), _keep_bn_stats(model):
        g = final_layer_grad(model, batch)
    return gram_distance(teacher.class_gram, normalized_gram(g))


def naswot_kernel(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """K_H[i, j] = number of ReLU units on which inputs i and j agree (both on or both off).

    Codes are taken at the input of every ReLU-like module, on every call (a module used
    twice contributes twice)."""
    n = x.shape[0]
    k = torch.zeros(n, n, dtype=torch.float64)

    def hook(_m, inp, _out):
        c = (inp[0].detach().reshape(n, -1) > 0).double()
        k.add_(c @ c.t() + (1 - c) @ (1 - c).t())

    hooks = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, _RELU_LIKE)]
    try:
        with torch.no_grad(), scoring_mode(model), _keep_bn_stats(model):
            model(x)
    finally:
        for h in hooks:
            h.remove()
    return k


@register_proxy("naswot", higher_is_better=True,
                paper="Mellor, Turner, Storkey, Crowley. Neural Architecture Search without Training. ICML 2021")
def naswot(model: nn.Module, batch: ProxyBatch) -> float:
    """NASWOT: log-determinant of the ReLU binary-code kernel on the batch."""
    k = naswot_kernel(model, batch.x)
    sign, logdet = torch.linalg.slogdet(k)
    return float(logdet) if float(sign) > 0 else float("-inf")


@register_proxy("synflow", higher_is_better=True, log_scale=True,
                paper="Tanaka, Kunin, Yamins, Ganguli. Pruning neural networks without any data. NeurIPS 2020")
def synflow(model: nn.Module, batch: ProxyBatch) -> float:
    """SynFlow: Σ|θ ⊙ ∂R/∂θ| with R the summed output of the |θ| network on an all-ones input."""
    net = copy.deepcopy(model).double().eval()
    for m in net.modules():
        if isinstance(m, _BN):
            m.reset_running_stats()
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
    params = _params(net)
    r = net(torch.ones(1, *batch.input_shape, dtype=torch.float64)).sum()
    grads = torch.autograd.grad(r, params, allow_unused=True)
    return float(sum((p.detach() * g).abs().sum() for p, g in zip(params, grads) if g is not None))


@register_proxy("snip", higher_is_better=True, log_scale=True,
                paper="Lee, Ajanthan, Torr. SNIP: single-shot network pruning. ICLR 2019")
def snip(model: nn.Module, batch: ProxyBatch) -> float:
    """SNIP: Σ|θ ⊙ ∂L_CE/∂θ| on the batch."""
    params, grads = _ce_grads(model, batch)
    return float(sum((p.detach() * g).abs().sum() for p, g in zip(params, grads)))


@register_proxy("grad_norm", higher_is_better=True, log_scale=True,
                paper="Abdelfattah, Mehrotra, Dudziak, Lane. Zero-cost proxies for lightweight NAS. ICLR 2021")
def grad_norm(model: nn.Module, batch: ProxyBatch) -> float:
    """grad_norm: the L2 norm of the CE gradient over all parameters."""
    _, grads = _ce_grads(model, batch)
    return float(math.sqrt(sum(float((g.double() ** 2).sum()) for g in grads)))


ZEN_ALPHA = 0.01
ZEN_SEED = 0


@register_proxy("zen", higher_is_better=True,
                paper="Lin et al. Zen-NAS: a zero-shot NAS for high-performance image recognition. ICCV 2021")
def zen(model: nn.Module, batch: ProxyBatch) -> float:
    """Zen-score: log E‖f(x) − f(x + αε)‖₁ + Σ_BN log √(mean σ²), Gaussian weights and inputs."""
    net = copy.deepcopy(model).double()
    gen = torch.Generator().manual_seed(ZEN_SEED)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen, dtype=torch.float64))
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, _BN) and m.affine:
                m.weight.fill_(1.0)
                m.bias.zero_()
        shape = (len(batch), *batch.input_shape)
        x = torch.randn(shape, generator=gen, dtype=torch.float64)
        eps = torch.randn(shape, generator=gen, dtype=torch.float64)
        bn_log = []

        def bn_hook(_m, inp):
            t = inp[0]
            dims = [0] + list(range(2, t.dim()))
            bn_log.append(0.5 * math.log(max(float(t.var(dim=dims, unbiased=False).mean()), 1e-300)))

        hooks = [m.register_forward_pre_hook(bn_hook) for m in net.modules() if isinstance(m, _BN)]
        try:
            with scoring_mode(net):
                logits, feats = forward_with_features(net, x)
                f1 = last_feature_map(feats, logits)
                for h in hooks:
                    h.remove()
                hooks = []
                logits2, feats2 = forward_with_features(net, x + ZEN_ALPHA * eps)
                f2 = last_feature_map(feats2, logits2)
        finally:
            for h in hooks:
                h.remove()
        diff = (f1 - f2).abs().reshape(f1.shape[0], -1).sum(1).mean()
    return float(math.log(max(float(diff), 1e-300)) + sum(bn_log))


@register_proxy("params", higher_is_better=True, log_scale=True, paper="baseline")
def params(model: nn.Module, batch: ProxyBatch) -> float:
    """Trainable parameter count (baseline)."""
    return float(count_params(model))


@register_proxy("flops", higher_is_better=True, log_scale=True, paper="baseline")
def flops(model: nn.Module, batch: ProxyBatch) -> float:
    """Multiply-accumulates of one forward pass at batch 1 (baseline; the reports' ``flops``)."""
    return float(count_macs(model, batch.input_shape))
