"""DisWOT's teacher-aware terms (Dong, Li, Wei, CVPR 2023): relation and semantic distances."""

from __future__ import annotations

import torch
from torch import nn

from autokd.models.registry import forward_with_features
from autokd.search.arch.proxies.base import (
    ProxyBatch,
    TeacherSignals,
    _keep_bn_stats,
    final_layer_grad,
    gram_distance,
    last_feature_map,
    normalized_gram,
    register_proxy,
    scoring_mode,
)


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
