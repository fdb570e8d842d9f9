"""Representation transfer for transformers: hidden states, attention, self-attention relations,
word and layer-transforming relations (``hidden_mse``, ``hidden_cos``, ``attn_kl``, ``minilm``,
``ckd_wr``, ``ckd_ltr``).

Features are sequences: hidden states ``(B, T, d)``, attention probabilities ``(B, H, T, T)``,
per-head queries/keys/values ``(B, H, T, d_h)`` (the decoder's ``blocks.{i}.attn.q`` …), or a
stack of every layer's hidden states ``(B, L + 1, T, d)`` (the decoder's ``layers`` alias). Which
student layer learns from which teacher layer is a *layer map*
(:func:`autokd.losses.layer_map.layer_pairs`: uniform, last, explicit), so depths may differ.

* ``hidden_mse`` / ``hidden_cos`` (``feature`` kind: a learned linear projection maps the
  student width onto the teacher's): TinyBERT's hidden-state MSE, and 1 − cosine per token.
* ``attn_kl`` (``relation``): KL(teacher ‖ student) of each query's attention distribution,
  per head when head counts match, else of the head-averaged distributions (MiniLM v1 needs
  equal heads; averaging is our choice for unequal ones).
* ``minilm`` (``relation``): MiniLMv2's self-attention relation transfer. The vectors (queries,
  keys or values, heads concatenated) are re-split into ``relation_heads`` heads of their own,
  ``R = softmax(X_a X_aᵀ / √d_r)`` per relation head, and the loss is KL(R_t ‖ R_s) averaged over
  relation heads and positions; teacher and student need not share head counts or widths.
  Pair q–q, k–k, v–v features for the paper's objective (the three terms add).
* ``ckd_wr`` (``relation``): CKD's word relation (Park, Kim & Yang, NAACL 2021): the pair-wise
  cosine similarities between the tokens of a sequence and the triple-wise angles
  cos∠(h_i − h_j, h_k − h_j), matched by the Huber loss (δ = 1, as in relational KD, which CKD
  builds on). Triples are restricted to a window of ``window`` consecutive tokens: O(T·w²)
  instead of O(T³) (the paper also restricts the triples it uses; the window is our choice).
* ``ckd_ltr`` (``relation``): CKD's layer-transforming relation: for each token, the cosine
  similarities between its representations at the mapped layers (pair-wise), and the angles
  between three layers (triple-wise), Huber-matched; features are the layer stacks, mapped by
  ``layer_map``.

Padding: these losses take whole windows (packed language-model windows have none).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from ._common import NoParams, check_batch
from .registry import register


def _check_seq(name: str, s: Tensor, t: Tensor, rank: int) -> None:
    check_batch(name, s, t, same_shape=False)
    if s.dim() != rank or t.dim() != rank:
        raise ValueError(f"{name}: expected {rank}-D features, got {tuple(s.shape)} and {tuple(t.shape)}")


@register("hidden_mse", kind="feature", task="lm", params=NoParams,
          paper="Jiao et al. TinyBERT: Distilling BERT for Natural Language Understanding. Findings of EMNLP 2020")
class HiddenMSE(nn.Module):
    """TinyBERT hidden-state transfer: MSE(h_s·W, h_t) over tokens and width (W learned where widths differ)."""

    def forward(self, student: Tensor, teacher: Tensor) -> Tensor:
        check_batch("hidden_mse", student, teacher, same_shape=True)
        return F.mse_loss(student, teacher.detach())


@register("hidden_cos", kind="feature", task="lm", params=NoParams,
          paper="Sanh et al. DistilBERT (cosine embedding loss on hidden states). NeurIPS EMC² workshop 2019")
class HiddenCosine(nn.Module):
    """Hidden-state direction transfer: mean over tokens of 1 − cos(h_s·W, h_t)."""

    def forward(self, student: Tensor, teacher: Tensor) -> Tensor:
        check_batch("hidden_cos", student, teacher, same_shape=True)
        return (1.0 - F.cosine_similarity(student, teacher.detach(), dim=-1)).mean()


def _kl_rows(p_t: Tensor, log_q: Tensor) -> Tensor:
    """KL(p ‖ q) per row (last dim) from teacher probabilities and student log-probabilities."""
    return torch.xlogy(p_t, p_t).sum(-1) - (p_t * log_q).sum(-1)


@register("attn_kl", kind="relation", task="lm", params=NoParams,
          paper="Wang et al. MiniLM: Deep Self-Attention Distillation. NeurIPS 2020 (attention distributions)")
class AttentionKL(nn.Module):
    """KL(teacher ‖ student) of each query's attention distribution (heads averaged if counts differ)."""

    def forward(self, student: Tensor, teacher: Tensor) -> Tensor:
        _check_seq("attn_kl", student, teacher, 4)
        if student.shape[-2:] != teacher.shape[-2:]:
            raise ValueError(f"attn_kl: sequence lengths differ: {tuple(student.shape)} vs {tuple(teacher.shape)}")
        if student.shape[1] != teacher.shape[1]:
            student, teacher = student.mean(1, keepdim=True), teacher.mean(1, keepdim=True)
        eps = torch.finfo(student.dtype).tiny
        return _kl_rows(teacher.detach(), student.clamp_min(eps).log()).mean()


class MiniLMParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    relation_heads: int = Field(4, ge=1, description="relation heads A: both widths must be multiples of A")


def self_relation(x: Tensor, heads: int) -> Tensor:
    """MiniLMv2 relation log-probabilities ``(B, A, T, T)`` of vectors ``(B, H, T, d_h)`` or ``(B, T, d)``."""
    if x.dim() == 4:  # per-head vectors: concatenate the heads back to (B, T, H·d_h)
        x = x.transpose(1, 2).reshape(x.shape[0], x.shape[2], -1)
    b, t, d = x.shape
    if d % heads:
        raise ValueError(f"minilm: width {d} is not a multiple of relation_heads={heads}")
    xa = x.reshape(b, t, heads, d // heads).transpose(1, 2)
    return F.log_softmax(xa @ xa.transpose(-2, -1) / math.sqrt(d // heads), dim=-1)


@register("minilm", kind="relation", task="lm", params=MiniLMParams,
          paper="Wang et al. MiniLMv2: Multi-Head Self-Attention Relation Distillation. Findings of ACL 2021")
class MiniLMRelation(nn.Module):
    """MiniLMv2 self-attention relation transfer: KL of softmax(X Xᵀ/√d_r) per relation head (q-q, k-k or v-v)."""

    def __init__(self, relation_heads: int = 4):
        super().__init__()
        self.relation_heads = int(relation_heads)

    def forward(self, student: Tensor, teacher: Tensor) -> Tensor:
        check_batch("minilm", student, teacher, same_shape=False)
        log_rs = self_relation(student, self.relation_heads)
        log_rt = self_relation(teacher.detach(), self.relation_heads)
        if log_rs.shape != log_rt.shape:
            raise ValueError(f"minilm: relation shapes differ: {tuple(log_rs.shape)} vs {tuple(log_rt.shape)}")
        return _kl_rows(log_rt.exp(), log_rs).mean()

    def extra_repr(self) -> str:
        return f"relation_heads={self.relation_heads}"


def pair_cosines(x: Tensor) -> Tensor:
    """Cosine similarity of every pair along dim -2: ``(..., n, d)`` -> ``(..., n, n)``."""
    x = F.normalize(x, dim=-1)
    return x @ x.transpose(-2, -1)


def window_angles(x: Tensor, window: int, eps: float = 1e-12) -> Tensor:
    """cos∠(x_i − x_j, x_k − x_j) for every i, j, k within ``window`` consecutive positions of
    dim -2 (the triples of each window start, stacked): ``(..., n, d)`` -> ``(..., s, w, w, w)``.

    Computed from the Gram matrix G = x xᵀ rather than from the (s, w, w, d) differences:
    (x_i − x_j)·(x_k − x_j) = G_ik − G_ij − G_jk + G_jj and ‖x_i − x_j‖² = G_ii − 2 G_ij + G_jj,
    so nothing of size w³·d is built (the difference form made ``ckd_wr`` ~7× slower than the
    other relation terms at context 128). A zero difference (i = j or k = j) has cosine 0, as
    ``F.normalize`` gives it."""
    n = x.shape[-2]
    w = min(window, n)
    g = x @ x.transpose(-2, -1)  # (..., n, n)
    idx = torch.arange(n - w + 1, device=x.device)[:, None] + torch.arange(w, device=x.device)[None, :]
    blk = g[..., idx[:, :, None], idx[:, None, :]]  # (..., s, w, w): G within each window
    diag = blk.diagonal(dim1=-2, dim2=-1)  # (..., s, w): G_pp
    same = torch.eye(w, dtype=torch.bool, device=x.device)  # (j, i): i == j
    sq = diag.unsqueeze(-1) + diag.unsqueeze(-2) - 2 * blk  # (..., s, j, i): ‖x_i − x_j‖²
    norm = torch.where(same, torch.ones_like(sq), sq).clamp_min(0).sqrt().clamp_min(eps)  # no sqrt(0) gradient
    num = (blk.unsqueeze(-3) - blk.unsqueeze(-1) - blk.unsqueeze(-2)
           + diag[..., :, None, None])  # (..., s, j, i, k): G_ik − G_ji − G_jk + G_jj
    cos = num / (norm.unsqueeze(-1) * norm.unsqueeze(-2))
    zero = same.unsqueeze(-1) | same.unsqueeze(-2)  # (j, i, k): i == j or k == j
    return torch.where(zero, torch.zeros_like(cos), cos)


class CKDParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pair_weight: float = Field(1.0, ge=0, allow_inf_nan=False, description="weight of the pair-wise term")
    triple_weight: float = Field(1.0, ge=0, allow_inf_nan=False, description="weight of the triple-wise (angle) term")
    window: int = Field(8, ge=3, description="triples only among this many consecutive tokens (or layers)")


@register("ckd_wr", kind="relation", task="lm", params=CKDParams,
          paper="Park, Kim & Yang. Distilling Linguistic Context for Language Model Compression (CKD). NAACL 2021")
class CKDWordRelation(nn.Module):
    """CKD word relation: pair-wise cosines and windowed triple-wise angles between tokens, Huber-matched."""

    def __init__(self, pair_weight: float = 1.0, triple_weight: float = 1.0, window: int = 8):
        super().__init__()
        self.pair_weight, self.triple_weight, self.window = float(pair_weight), float(triple_weight), int(window)

    def relation_loss(self, s: Tensor, t: Tensor) -> Tensor:
        loss = s.new_zeros(())
        if self.pair_weight:
            loss = loss + self.pair_weight * F.smooth_l1_loss(pair_cosines(s), pair_cosines(t))
        if self.triple_weight:
            loss = loss + self.triple_weight * F.smooth_l1_loss(window_angles(s, self.window),
                                                                window_angles(t, self.window))
        return loss

    def forward(self, student: Tensor, teacher: Tensor) -> Tensor:
        _check_seq("ckd_wr", student, teacher, 3)
        if student.shape[1] != teacher.shape[1]:
            raise ValueError(f"ckd_wr: sequence lengths differ: {student.shape[1]} vs {teacher.shape[1]}")
        return self.relation_loss(student, teacher.detach())

    def extra_repr(self) -> str:
        return f"pair_weight={self.pair_weight}, triple_weight={self.triple_weight}, window={self.window}"


class CKDLTRParams(CKDParams):
    layer_map: Literal["uniform", "last"] = Field(
        "uniform", description="which student layers face which teacher layers (layers include the embeddings)")


@register("ckd_ltr", kind="relation", task="lm", params=CKDLTRParams,
          paper="Park, Kim & Yang. Distilling Linguistic Context for Language Model Compression (CKD). NAACL 2021")
class CKDLayerRelation(CKDWordRelation):
    """CKD layer-transforming relation: per token, cosines and angles between its mapped layers' states."""

    def __init__(self, pair_weight: float = 1.0, triple_weight: float = 1.0, window: int = 8,
                 layer_map: str = "uniform"):
        super().__init__(pair_weight, triple_weight, window)
        self.layer_map = layer_map

    def forward(self, student: Tensor, teacher: Tensor) -> Tensor:
        from .layer_map import layer_pairs

        _check_seq("ckd_ltr", student, teacher, 4)
        pairs = layer_pairs(self.layer_map, student.shape[1] - 1, teacher.shape[1] - 1, embeddings=True)
        if len(pairs) < 2:
            raise ValueError("ckd_ltr: the layer map gives fewer than two layers; use layer_map 'uniform'")
        s_idx = torch.tensor([s for s, _ in pairs], device=student.device)
        t_idx = torch.tensor([t for _, t in pairs], device=teacher.device)
        # (B, M, T, d) -> per token: (B, T, M, d), relations among the M mapped layers
        s = student.index_select(1, s_idx).transpose(1, 2)
        t = teacher.detach().index_select(1, t_idx).transpose(1, 2)
        return self.relation_loss(s, t)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, layer_map={self.layer_map!r}"
