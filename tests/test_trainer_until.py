"""``train(until=k)``: a run trained an epoch at a time (how a multi-worker search trial drives its
workers) is the run trained in one call, schedule, weights and ``keep: best`` included."""

from __future__ import annotations

import torch

from autokd.spec.pipeline import TrainSpec
from autokd.train import CrossEntropyObjective, train
from autokd.train.checkpoint import CKPT_NAME, load_checkpoint

from test_trainer import CPU, _data, _model


def _train(model, cfg, ckpt, **kw):
    return train(model, _data(), _data(48, 1), cfg, CrossEntropyObjective(), device=CPU,
                 checkpoint_dir=ckpt, run_fingerprint="fp", progress=False, **kw)


def test_epoch_at_a_time_equals_one_call(tmp_path):
    # cosine over all 12 epochs, and keep=best picks an earlier one than the last
    cfg = TrainSpec(epochs=12, batch_size=16, lr=0.1, weight_decay=0.0, schedule="cosine", keep="best")
    whole = _model()
    full = _train(whole, cfg, tmp_path / "whole")
    assert full.final["kept_epoch"] != 12, "the setting must overfit for keep=best to matter"
    stepped = _model()
    lrs = []
    for k in range(1, cfg.epochs + 1):
        part = _train(stepped, cfg, tmp_path / "stepped", until=k)
        assert len(part.history) == k and "kept_epoch" not in part.final  # no best weights mid-run
        lrs.append(part.history[-1]["lr"])
        tensors, meta = load_checkpoint(tmp_path / "stepped" / CKPT_NAME)
        assert meta["epoch"] == k - 1
        assert torch.equal(stepped.state_dict()["head.weight"], tensors["model.head.weight"])
    assert lrs == [r["lr"] for r in full.history]  # the cosine of the whole run, not of k epochs
    last = _train(stepped, cfg, tmp_path / "stepped")  # the call without until: keep=best applies
    assert last.epochs_run == 0 and last.history == full.history and last.final == full.final
    for a, b in zip(whole.state_dict().values(), stepped.state_dict().values()):
        assert torch.equal(a, b)
