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

Modules, one per proxy family: :mod:`.base` (registry, batch, teacher signals, helpers),
:mod:`.diswot`, :mod:`.activation` (NASWOT, Zen), :mod:`.gradient` (SynFlow, SNIP, grad_norm,
ZiCo), :mod:`.correlation` (MeCo), :mod:`.baselines` (params, FLOPs).

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
zico               higher  Σ_layers log Σ_θ mean|g_θ| / std(g_θ) over 2 mini-batches of the batch, g the CE
                           gradient of each Conv2d/Linear weight (Li et al., ICLR 2023)
meco               higher  Σ_layers λ_min(Pearson correlation of the first sample's C channels)
                           (Jiang, Wang, Bie, NeurIPS 2023)
meco_opt           higher  Σ_layers (C/8)·λ_min of 8 channels sampled (seeded) (MeCo_opt, same paper)
params             higher  trainable parameter count (baseline every ranking reports)
flops              higher  multiply-accumulates at batch 1 (baseline every ranking reports)
nonembedding_      higher  language models: parameters outside the token and position embeddings
params                     and the vocabulary head (Javaheripi et al., LiteTransformerSearch, 2022)
=================  ======  ====================================================================

Language-model students (``decoder`` spaces) are scored by the proxies defined on token windows:
``snip``, ``grad_norm`` and ``zico`` (next-token CE over the targets that count), ``params``,
``flops`` and ``nonembedding_params``; a space naming another is an error.
"""

from autokd.search.arch.proxies.base import (
    _BN,
    _RELU_LIKE,
    BASELINES,
    PROXIES,
    Proxy,
    ProxyBatch,
    TeacherSignals,
    available_proxies,
    compute_proxy,
    final_layer,
    final_layer_grad,
    get_proxy,
    gram_distance,
    last_feature_map,
    normalized_gram,
    register_proxy,
    scoring_mode,
    teacher_signals,
)
from autokd.search.arch.proxies.diswot import diswot_relation, diswot_semantic  # noqa: I001  (registration order)
from autokd.search.arch.proxies.activation import ZEN_ALPHA, ZEN_SEED, naswot, naswot_kernel, zen
from autokd.search.arch.proxies.gradient import ZICO_SPLITS, grad_norm, snip, synflow, zico, zico_layer_gradients
from autokd.search.arch.proxies.correlation import MECO_OPT_CHANNELS, meco, meco_layer_values, meco_opt, \
    min_corr_eigenvalue
from autokd.search.arch.proxies.baselines import flops, nonembedding_params, params

__all__ = [
    "BASELINES",
    "MECO_OPT_CHANNELS",
    "PROXIES",
    "ZEN_ALPHA",
    "ZEN_SEED",
    "ZICO_SPLITS",
    "Proxy",
    "ProxyBatch",
    "TeacherSignals",
    "available_proxies",
    "compute_proxy",
    "diswot_relation",
    "diswot_semantic",
    "final_layer",
    "final_layer_grad",
    "flops",
    "get_proxy",
    "grad_norm",
    "gram_distance",
    "last_feature_map",
    "meco",
    "meco_layer_values",
    "meco_opt",
    "min_corr_eigenvalue",
    "naswot",
    "naswot_kernel",
    "nonembedding_params",
    "normalized_gram",
    "params",
    "register_proxy",
    "scoring_mode",
    "snip",
    "synflow",
    "teacher_signals",
    "zen",
    "zico",
    "zico_layer_gradients",
]
