"""The distilled LM student's initial weights: the seed's (``build_role_model``), or cut out of
the trained teacher (``student.init``, :mod:`autokd.models.prune`). The distill stage and a
search trial of the same spec both start here, so they start alike."""

from __future__ import annotations

import torch

from autokd.data.text.prepare import PreparedText
from autokd.models.artifact import MODEL_FILE, load_model
from autokd.models.decoder import DecoderParams
from autokd.models.prune import prune_decoder
from autokd.spec.lm import LMPipelineSpec
from autokd.stages.layout import Layout
from autokd.stages.recipe import build_role_model


def initial_student(spec: LMPipelineSpec, data: PreparedText, layout: Layout) -> torch.nn.Module:
    """The student to distil: random at its seed, or pruned from ``layout``'s teacher on the first
    ``calibration_windows`` training windows (the seed is set first either way, so dropout and
    everything after draw alike)."""
    model = build_role_model(spec.student, data)
    init = spec.student.init
    if init is None:
        return model
    teacher = load_model(layout.model_dir("teacher") / MODEL_FILE)
    keep = init.layers(teacher.num_layers)
    calibration = data.train.x[: init.calibration_windows]
    return prune_decoder(teacher, DecoderParams(**spec.student.model.params), keep, calibration)
