"""A student cut out of its teacher (Minitron-style structured pruning of a ``decoder``).

Muralidharan et al. 2024 (Minitron) prune a trained transformer in depth (whole layers), and in
width by activation importance on a small calibration set, then distill into the pruned model.
Here, for autokd's ``decoder`` (:mod:`autokd.models.decoder`):

* **depth**: the teacher's layers ``keep_layers`` (in order) become the student's;
* **hidden channels** (the residual stream, the embedding width): the ``width`` channels with
  the largest importance ``Σ_layers mean|ln1(x)| + mean|ln2(x)|`` (+ the final LayerNorm's),
  the mean over the calibration tokens of each channel's LayerNorm output, kept in their order;
* **attention heads**, per kept layer: the ``heads`` heads whose output (the per-head context
  vector before the output projection) has the largest mean L2 norm; whole heads, so the
  head dimension stays the teacher's (hence ``width / heads`` must equal the teacher's);
* **MLP neurons**, per kept layer: the ``round(mlp_ratio · width)`` neurons with the largest
  mean ``|GELU(fc(x))|``.

Every weight is the teacher's, sliced on those indices (embeddings and head on the kept
channels; LayerNorms on them too, so their statistics are over fewer channels, as in Minitron's
width pruning). Ties in importance keep the lower index (a stable sort), so the same teacher
and calibration windows give the same student.
"""

from __future__ import annotations

from typing import Iterable

import torch
from torch import Tensor

from autokd.models.decoder import DecoderLM, DecoderParams


def _top(scores: Tensor, k: int) -> Tensor:
    """Indices of the ``k`` largest scores, in ascending index order (stable among ties)."""
    order = torch.sort(-scores, stable=True).indices[:k]
    return order.sort().values


@torch.no_grad()
def importance(teacher: DecoderLM, x: Tensor) -> tuple[Tensor, list[Tensor], list[Tensor]]:
    """``(channels (W,), heads per layer [(H,)], neurons per layer [(hidden,)])`` on ids ``x``."""
    width, heads = teacher.params_spec.width, teacher.params_spec.heads
    channel = torch.zeros(width)
    head_scores: list[Tensor] = [torch.zeros(heads) for _ in teacher.blocks]
    neuron_scores: list[Tensor] = [torch.zeros(0) for _ in teacher.blocks]
    handles = []

    def channels(_m, _inp, out):
        channel.add_(out.abs().mean(dim=(0, 1)).float().cpu())

    def per_head(i):
        def hook(_m, inp):
            y = inp[0]
            b, t, d = y.shape
            head_scores[i].add_(y.view(b, t, heads, d // heads).norm(dim=-1).mean(dim=(0, 1)).float().cpu())
        return hook

    def neurons(i):
        def hook(_m, _inp, out):
            neuron_scores[i] = out.abs().mean(dim=(0, 1)).float().cpu()
        return hook

    try:
        for i, block in enumerate(teacher.blocks):
            handles += [block.ln1.register_forward_hook(channels), block.ln2.register_forward_hook(channels),
                        block.attn.out.register_forward_pre_hook(per_head(i)),
                        block.mlp[1].register_forward_hook(neurons(i))]
        handles.append(teacher.ln_f.register_forward_hook(channels))
        was = teacher.training
        teacher.eval()
        teacher(x)
        teacher.train(was)
    finally:
        for h in handles:
            h.remove()
    return channel, head_scores, neuron_scores


@torch.no_grad()
def prune_decoder(teacher: DecoderLM, student: DecoderParams, keep_layers: Iterable[int], x: Tensor) -> DecoderLM:
    """A ``decoder`` of shape ``student`` holding the teacher's weights at the most important
    layers, channels, heads and neurons (module doc); ``x``: calibration token ids ``(N, T)``."""
    t = teacher.params_spec
    keep = list(keep_layers)
    head_dim = t.width // t.heads
    hidden = max(1, int(round(student.mlp_ratio * student.width)))
    if student.width // student.heads != head_dim or student.width % student.heads:
        raise ValueError(f"a student cut from the teacher keeps whole heads of {head_dim} dimensions: width "
                         f"{student.width} / heads {student.heads} must be {head_dim}")
    if len(keep) != student.layers or student.width > t.width or student.heads > t.heads:
        raise ValueError(f"cannot cut {student.layers} layers x {student.width} x {student.heads} heads from "
                         f"{t.layers} x {t.width} x {t.heads} keeping layers {keep}")
    channel, head_scores, neuron_scores = importance(teacher, x)
    if hidden > neuron_scores[0].numel():
        raise ValueError(f"the student's MLP ({hidden}) is wider than the teacher's ({neuron_scores[0].numel()})")
    c = _top(channel, student.width)
    out = DecoderLM(teacher.vocab_size, teacher.context, student)
    src = teacher.state_dict()
    dst = out.state_dict()
    new = {"tok.weight": src["tok.weight"][:, c], "pos.weight": src["pos.weight"][:, c],
           "ln_f.weight": src["ln_f.weight"][c], "ln_f.bias": src["ln_f.bias"][c]}
    if "head.weight" in dst and not student.tied_embeddings:
        new["head.weight"] = src["head.weight"][:, c]
    for j, i in enumerate(keep):
        s, d = f"blocks.{i}.", f"blocks.{j}."
        h = _top(head_scores[i], student.heads)
        dims = (h[:, None] * head_dim + torch.arange(head_dim)[None, :]).reshape(-1)  # the kept heads' rows
        qkv_rows = torch.cat([dims + k * t.width for k in range(3)])  # q, k and v blocks of the fused layer
        m = _top(neuron_scores[i], hidden)
        for ln in ("ln1", "ln2"):
            new[d + ln + ".weight"], new[d + ln + ".bias"] = src[s + ln + ".weight"][c], src[s + ln + ".bias"][c]
        new[d + "attn.qkv.weight"] = src[s + "attn.qkv.weight"][qkv_rows][:, c]
        new[d + "attn.qkv.bias"] = src[s + "attn.qkv.bias"][qkv_rows]
        new[d + "attn.out.weight"] = src[s + "attn.out.weight"][c][:, dims]
        new[d + "attn.out.bias"] = src[s + "attn.out.bias"][c]
        new[d + "mlp.0.weight"] = src[s + "mlp.0.weight"][m][:, c]
        new[d + "mlp.0.bias"] = src[s + "mlp.0.bias"][m]
        new[d + "mlp.2.weight"] = src[s + "mlp.2.weight"][c][:, m]
        new[d + "mlp.2.bias"] = src[s + "mlp.2.bias"][c]
    missing = set(dst) - set(new) - ({"head.weight"} if student.tied_embeddings else set())
    if missing:
        raise ValueError(f"pruning left weights unset: {sorted(missing)}")
    out.load_state_dict({**dst, **{k: v.clone() for k, v in new.items()}})
    return out
