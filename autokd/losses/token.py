"""Token-level divergences for language-model distillation (``fkl``, ``rkl``, ``jsd``, ``tvd``,
``skl``, ``srkl``, ``akl``).

Every loss compares, at each token position, the teacher's next-token distribution
``p = softmax(z_t / T)`` with the student's ``q = softmax(z_s / T)`` over the whole vocabulary,
and returns the **masked mean over tokens**::

    L = Σ_{b,t} mask[b,t] · D(p_bt, q_bt) / Σ_{b,t} mask[b,t]

Call: ``loss(student_logits, teacher_logits, mask)`` with logits ``(B, T, V)`` (or ``(N, V)``)
and a boolean ``mask`` ``(B, T)`` (``None``: every position). Positions outside the mask never
reach the divergence (they are dropped before any softmax), so padding changes nothing, not
even through a NaN in a padded row.

Reference choices:

* **No T² factor** (unlike classification KD): the temperature softens both distributions and
  the divergence is reported as is, the convention of TRL's ``GKDTrainer`` and DistiLLM.
* **Generalized JSD** follows TRL ``GKDTrainer.generalized_jsd_loss``: with the mixture
  ``m = β·p + (1 − β)·q``, ``JSD(β) = β·KL(p ‖ m) + (1 − β)·KL(q ‖ m)`` for 0 < β < 1, and the
  ends are exact by definition: β = 0 is forward ``KL(p ‖ q)``, β = 1 reverse ``KL(q ‖ p)``
  (the mixture formula itself tends to 0 at both ends).
* **Skew KL** (DistiLLM, Ko et al. 2024): ``SKL_α = KL(p ‖ α·p + (1 − α)·q)`` and
  ``SRKL_α = KL(q ‖ (1 − α)·p + α·q)``. DistiLLM's code drops ``Σ p log p`` from SKL (a
  constant for the student); here it is kept, so the value is a divergence (0 when q = p) and
  the gradient is the same.
* **AKL** (Wu et al. 2024): sort the teacher's probabilities in descending order; the *head*
  is the prefix whose cumulative mass (inclusive) stays ≤ μ, and always the top token; the
  *tail* the rest. With ``g_head = Σ_head |p − q|`` and ``g_tail = Σ_tail |p − q|``
  (student detached), ``AKL = g_head/(g_head+g_tail)·KL(p ‖ q) + g_tail/(g_head+g_tail)·KL(q ‖ p)``.
  This is the authors' code's rule (tail where ``cumsum > μ``, the first sorted position forced
  into the head): the token that crosses μ belongs to the tail. A full-vocabulary sort per token: AKL is the slowest here.

**A cached teacher** (:class:`SparseTeacher`: its top-k log-probabilities, their vocabulary
indices and the log of the remaining tail mass, all at the loss temperature) replaces the
dense teacher logits: both distributions are then collapsed onto the k cached tokens plus one
"tail" outcome (the student's tail mass is ``1 − Σ_k q``), and the same divergence is taken over
those k + 1 outcomes. With k = V it equals the dense loss; for smaller k forward KL loses
exactly the teacher-weighted KL *within* the tail.

**Bounded memory.** The selected tokens are processed in chunks of ``chunk_tokens`` rows (auto: at
most 2^24 logits a chunk, so a small vocabulary runs in one piece); when there are several
chunks and gradients are needed, each chunk runs under ``torch.utils.checkpoint``, so only the logits are
kept for the backward pass and the ``(tokens, V)`` softmax intermediates exist for one chunk at
a time (``benchmarks/token_loss_memory.py`` measures it at V = 32K).
"""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from .registry import register

TOKEN_TEMPERATURE_DESC = "softmax temperature T of both distributions (no T² factor, the TRL/DistiLLM convention)"
CHUNK_DESC = ("tokens per chunk: the (tokens, vocab) intermediates exist for one chunk at a time; 0 = auto "
              "(chunks of at most 2^24 logits, e.g. 512 tokens at a 32K vocabulary, none for a small batch)")
AUTO_CHUNK_ELEMENTS = 1 << 24


@dataclass
class SparseTeacher:
    """A teacher's next-token distribution kept as its top k: ``logprobs`` and ``indices``
    ``(..., k)``, ``tail`` ``(...)`` the log of the mass outside them, at ``temperature``."""

    logprobs: Tensor
    indices: Tensor
    tail: Tensor
    temperature: float = 1.0

    @property
    def shape(self) -> torch.Size:
        return self.logprobs.shape[:-1]

    def to(self, device: torch.device | str) -> "SparseTeacher":
        return SparseTeacher(self.logprobs.to(device), self.indices.to(device), self.tail.to(device), self.temperature)

    def rows(self, keep: Tensor | None) -> "SparseTeacher":
        """Flattened to ``(N, k)`` rows, those at ``keep`` (flat positions) when given."""
        k = self.logprobs.shape[-1]
        lp, ix, tl = self.logprobs.reshape(-1, k), self.indices.reshape(-1, k), self.tail.reshape(-1)
        if keep is not None:
            lp, ix, tl = lp.index_select(0, keep), ix.index_select(0, keep), tl.index_select(0, keep)
        return SparseTeacher(lp, ix, tl, self.temperature)


@torch.no_grad()
def topk_teacher(teacher_logits: Tensor, k: int, temperature: float = 1.0) -> SparseTeacher:
    """The top ``k`` of ``softmax(teacher_logits / T)`` per position, and the log tail mass."""
    log_p = _log_softmax_t(teacher_logits, temperature)
    logprobs, indices = log_p.topk(min(k, log_p.shape[-1]), dim=-1)
    return SparseTeacher(logprobs, indices, _log_tail(logprobs), float(temperature))


def _log_tail(log_in: Tensor) -> Tensor:
    """``log(1 − Σ exp(log_in))`` over the last dim, floored at the smallest normal float."""
    tiny = torch.finfo(log_in.dtype).tiny
    return torch.log((-torch.expm1(torch.logsumexp(log_in, dim=-1))).clamp_min(tiny))


def collapse(log_q: Tensor, teacher: SparseTeacher) -> tuple[Tensor, Tensor]:
    """Student and teacher log-probabilities over the k cached tokens plus the tail, ``(N, k + 1)``."""
    log_q_k = log_q.gather(-1, teacher.indices.long())
    log_q_c = torch.cat([log_q_k, _log_tail(log_q_k).unsqueeze(-1)], dim=-1)
    tiny = torch.finfo(log_q.dtype).tiny
    log_p_c = torch.cat([teacher.logprobs.to(log_q.dtype), teacher.tail.to(log_q.dtype).clamp_min(math.log(tiny)).unsqueeze(-1)], dim=-1)
    return log_q_c, log_p_c


def flatten_tokens(student_logits: Tensor, teacher_logits: Tensor | SparseTeacher, mask: Tensor | None,
                   name: str) -> tuple[Tensor, Tensor | SparseTeacher]:
    """The ``(N, V)`` rows of the positions where ``mask`` is true (all positions if ``None``)."""
    if isinstance(teacher_logits, SparseTeacher):
        if teacher_logits.shape != student_logits.shape[:-1]:
            raise ValueError(f"{name}: cached teacher positions {tuple(teacher_logits.shape)} != student positions "
                             f"{tuple(student_logits.shape[:-1])}")
        if int(teacher_logits.indices.max()) >= student_logits.shape[-1]:
            raise ValueError(f"{name}: cached teacher token ids exceed the student's vocabulary "
                             f"({student_logits.shape[-1]}): teacher and student must share the vocabulary")
        s = student_logits.reshape(-1, student_logits.shape[-1])
        if mask is None:
            return s, teacher_logits.rows(None)
        if mask.shape != student_logits.shape[:-1]:
            raise ValueError(f"{name}: mask shape {tuple(mask.shape)} != logits positions "
                             f"{tuple(student_logits.shape[:-1])}")
        keep = mask.reshape(-1).nonzero(as_tuple=True)[0]
        return s.index_select(0, keep), teacher_logits.rows(keep)
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f"{name}: teacher logits shape {tuple(teacher_logits.shape)} != student logits shape "
                         f"{tuple(student_logits.shape)} (teacher and student must share the vocabulary)")
    if student_logits.dim() < 2:
        raise ValueError(f"{name}: logits must be (batch, seq, vocab) or (tokens, vocab), got {tuple(student_logits.shape)}")
    vocab = student_logits.shape[-1]
    s = student_logits.reshape(-1, vocab)
    t = teacher_logits.detach().reshape(-1, vocab)
    if mask is None:
        return s, t
    if mask.shape != student_logits.shape[:-1]:
        raise ValueError(f"{name}: mask shape {tuple(mask.shape)} != logits positions {tuple(student_logits.shape[:-1])}")
    keep = mask.reshape(-1).nonzero(as_tuple=True)[0]
    return s.index_select(0, keep), t.index_select(0, keep)


def _at_least_fp32(x: Tensor) -> Tensor:
    """Half-precision logits (AMP) are upcast: a softmax over a large vocabulary needs fp32."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def _log_softmax_t(x: Tensor, temperature: float) -> Tensor:
    """``log_softmax(x / T)`` in at least fp32; at T = 1 without the division (x / 1 is x, bit for bit),
    which saves a ``(tokens, V)`` copy forward and one backward."""
    x = _at_least_fp32(x)
    return F.log_softmax(x if temperature == 1.0 else x / temperature, dim=-1)


def _kl(log_a: Tensor, log_b: Tensor) -> Tensor:
    """``KL(a ‖ b)`` per row from log-probabilities (0·log 0 = 0)."""
    return F.kl_div(log_b, log_a, reduction="none", log_target=True).sum(-1)


def _log_mix(log_a: Tensor, log_b: Tensor, weight_a: float) -> Tensor:
    """``log(w·a + (1 − w)·b)`` computed in log space, for 0 < w < 1."""
    return torch.logaddexp(log_a + math.log(weight_a), log_b + math.log1p(-weight_a))


class TokenDivergence(nn.Module, abc.ABC):
    """Base of the token-level losses: temperature, masking, chunked masked mean. A subclass
    defines :meth:`divergence` (abstract: the base itself cannot be built)."""

    kind = "token"

    def __init__(self, temperature: float = 1.0, chunk_tokens: int = 0):
        super().__init__()
        self.temperature = float(temperature)
        self.chunk_tokens = int(chunk_tokens)

    def chunk_size(self, n: int, vocab: int) -> int:
        """Rows per chunk for ``n`` rows of ``vocab`` logits (the whole when it fits the auto budget)."""
        if self.chunk_tokens > 0:
            return self.chunk_tokens
        return max(1, AUTO_CHUNK_ELEMENTS // max(vocab, 1))

    @abc.abstractmethod
    def divergence(self, log_q: Tensor, log_p: Tensor) -> Tensor:
        """Per-row divergence ``D(p, q)`` from student ``log_q`` and teacher ``log_p`` ``(n, V)``."""

    def _chunk(self, student: Tensor, teacher: Tensor) -> Tensor:
        log_q = _log_softmax_t(student, self.temperature)
        log_p = _log_softmax_t(teacher, self.temperature)
        return self.divergence(log_q, log_p).sum()

    def _sparse_chunk(self, student: Tensor, logprobs: Tensor, indices: Tensor, tail: Tensor) -> Tensor:
        log_q = _log_softmax_t(student, self.temperature)
        return self.divergence(*collapse(log_q, SparseTeacher(logprobs, indices, tail))).sum()

    def token_sum(self, student: Tensor, teacher: Tensor | SparseTeacher) -> Tensor:
        """Σ over the ``(N, V)`` rows of the divergence, chunk by chunk."""
        sparse = isinstance(teacher, SparseTeacher)
        if sparse and not math.isclose(teacher.temperature, self.temperature):
            raise ValueError(f"{type(self).__name__}: the cached teacher was computed at temperature "
                             f"{teacher.temperature}, the loss runs at {self.temperature}")
        n = student.shape[0]
        step = self.chunk_size(n, student.shape[-1])
        chunked = step < n
        total = student.new_zeros((), dtype=torch.promote_types(student.dtype, torch.float32))
        for start in range(0, n, step):
            # one chunk: the tensors themselves (a slice's backward would zero-fill and copy a (N, V) gradient)
            rows = slice(start, start + step) if chunked else slice(None)
            s = student[rows] if chunked else student
            if sparse:
                fn = self._sparse_chunk
                args = tuple(x[rows] for x in (teacher.logprobs, teacher.indices, teacher.tail))
            else:
                fn, args = self._chunk, (teacher[rows],)
            if chunked and torch.is_grad_enabled() and s.requires_grad:  # keep only the logits for backward
                total = total + checkpoint(fn, s, *args, use_reentrant=False)
            else:
                total = total + fn(s, *args)
        return total

    def per_token(self, student_logits: Tensor, teacher_logits: Tensor) -> Tensor:
        """The divergence at every position, shape ``student_logits.shape[:-1]`` (no chunking)."""
        log_q = _log_softmax_t(student_logits, self.temperature)
        log_p = _log_softmax_t(teacher_logits.detach(), self.temperature)
        return self.divergence(log_q, log_p)

    def forward(self, student_logits: Tensor, teacher_logits: Tensor | SparseTeacher,
                mask: Tensor | None = None) -> Tensor:
        name = type(self).__name__
        s, t = flatten_tokens(student_logits, teacher_logits, mask, name)
        if s.shape[0] == 0:
            return student_logits.sum() * 0.0  # no token selected: zero, still attached to the graph
        return self.token_sum(s, t) / s.shape[0]

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, chunk_tokens={self.chunk_tokens}"


class TokenParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    temperature: float = Field(1.0, gt=0, allow_inf_nan=False, description=TOKEN_TEMPERATURE_DESC)
    chunk_tokens: int = Field(0, ge=0, description=CHUNK_DESC)


@register("fkl", kind="token", task="lm", params=TokenParams,
          paper="Hinton, Vinyals & Dean 2015; token-level KD for sequences: Kim & Rush, EMNLP 2016")
class ForwardKL(TokenDivergence):
    """Forward KL(p_teacher ‖ q_student) per token (mass-covering)."""

    def divergence(self, log_q: Tensor, log_p: Tensor) -> Tensor:
        return _kl(log_p, log_q)


@register("rkl", kind="token", task="lm", params=TokenParams,
          paper="Gu, Dong, Wei & Huang. MiniLLM: Knowledge Distillation of Large Language Models. ICLR 2024")
class ReverseKL(TokenDivergence):
    """Reverse KL(q_student ‖ p_teacher) per token (mode-seeking)."""

    def divergence(self, log_q: Tensor, log_p: Tensor) -> Tensor:
        return _kl(log_q, log_p)


class JSDParams(TokenParams):
    beta: float = Field(0.5, ge=0, le=1, allow_inf_nan=False,
                        description="β of the mixture β·p + (1−β)·q: 0 = forward KL, 1 = reverse KL (TRL GKD)")


@register("jsd", kind="token", task="lm", params=JSDParams,
          paper="Agarwal et al. On-Policy Distillation of Language Models (GKD). ICLR 2024; TRL GKDTrainer")
class GeneralizedJSD(TokenDivergence):
    """Generalized Jensen-Shannon divergence JSD(β) per token, TRL's convention (exact KLs at β = 0, 1)."""

    def __init__(self, temperature: float = 1.0, chunk_tokens: int = 0, beta: float = 0.5):
        super().__init__(temperature, chunk_tokens)
        self.beta = float(beta)

    def divergence(self, log_q: Tensor, log_p: Tensor) -> Tensor:
        if self.beta == 0.0:
            return _kl(log_p, log_q)
        if self.beta == 1.0:
            return _kl(log_q, log_p)
        log_m = _log_mix(log_p, log_q, self.beta)
        return self.beta * _kl(log_p, log_m) + (1.0 - self.beta) * _kl(log_q, log_m)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, beta={self.beta}"


@register("tvd", kind="token", task="lm", params=TokenParams,
          paper="Wen, Li, Du & Mou. f-Divergence Minimization for Sequence-Level Knowledge Distillation. ACL 2023")
class TotalVariation(TokenDivergence):
    """Total variation distance ½·Σ|p − q| per token."""

    def divergence(self, log_q: Tensor, log_p: Tensor) -> Tensor:
        return 0.5 * (log_p.exp() - log_q.exp()).abs().sum(-1)


class SkewParams(TokenParams):
    alpha: float = Field(0.1, gt=0, lt=1, allow_inf_nan=False,
                         description="skew α: the weight of the divergence's own first argument in the mixture")


@register("skl", kind="token", task="lm", params=SkewParams,
          paper="Ko, Kim, Chen & Yun. DistiLLM: Towards Streamlined Distillation for Large Language Models. ICML 2024")
class SkewKL(TokenDivergence):
    """α-skew KL(p ‖ α·p + (1 − α)·q) per token (DistiLLM)."""

    def __init__(self, temperature: float = 1.0, chunk_tokens: int = 0, alpha: float = 0.1):
        super().__init__(temperature, chunk_tokens)
        self.alpha = float(alpha)

    def divergence(self, log_q: Tensor, log_p: Tensor) -> Tensor:
        return _kl(log_p, _log_mix(log_p, log_q, self.alpha))

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, alpha={self.alpha}"


@register("srkl", kind="token", task="lm", params=SkewParams,
          paper="Ko, Kim, Chen & Yun. DistiLLM: Towards Streamlined Distillation for Large Language Models. ICML 2024")
class SkewReverseKL(SkewKL):
    """α-skew reverse KL(q ‖ (1 − α)·p + α·q) per token (DistiLLM)."""

    def divergence(self, log_q: Tensor, log_p: Tensor) -> Tensor:
        return _kl(log_q, _log_mix(log_q, log_p, self.alpha))


class AKLParams(TokenParams):
    mu: float = Field(0.5, gt=0, lt=1, allow_inf_nan=False,
                      description="μ: the teacher's cumulative probability that separates head from tail")


def akl_weights(log_q: Tensor, log_p: Tensor, mu: float) -> tuple[Tensor, Tensor]:
    """AKL's per-row head and tail weights (sum 1), from the student detached."""
    p = log_p.exp()
    q = log_q.detach().exp()
    p_sorted, order = p.sort(dim=-1, descending=True)
    err = (p_sorted - q.gather(-1, order)).abs()
    tail = p_sorted.cumsum(-1) > mu
    tail[..., 0] = False
    g_head = err.masked_fill(tail, 0.0).sum(-1)
    g_tail = err.masked_fill(~tail, 0.0).sum(-1)
    denom = (g_head + g_tail).clamp_min(torch.finfo(err.dtype).tiny)
    return g_head / denom, g_tail / denom


@register("akl", kind="token", task="lm", params=AKLParams,
          paper="Wu, Tao, Zhu, Zhang & Yang. Rethinking Kullback-Leibler Divergence in Knowledge Distillation "
                "for Large Language Models. COLING 2025 (arXiv:2404.02657)")
class AdaptiveKL(TokenDivergence):
    """Adaptive KL: forward and reverse KL weighted by the head/tail gaps of each token (Wu et al. 2024)."""

    def __init__(self, temperature: float = 1.0, chunk_tokens: int = 0, mu: float = 0.5):
        super().__init__(temperature, chunk_tokens)
        self.mu = float(mu)

    def divergence(self, log_q: Tensor, log_p: Tensor) -> Tensor:
        w_head, w_tail = akl_weights(log_q, log_p, self.mu)
        return w_head * _kl(log_p, log_q) + w_tail * _kl(log_q, log_p)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, mu={self.mu}"
