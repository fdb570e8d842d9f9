"""The training loop: determinism, checkpoint/resume, NaN stop, schedules."""

import math

import pytest
import torch
from torch import nn

from autokd.data.prepare import Split
from autokd.models import build_model
from autokd.spec.pipeline import TrainSpec
from autokd.train import CrossEntropyObjective, NonFiniteLossError, lr_factor, seed_everything, train
from autokd.train.checkpoint import CKPT_NAME, load_checkpoint

CPU = torch.device("cpu")


def _data(n=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 8, 8, generator=g)
    y = (x[:, 0, :4].sum((1, 2)) > 0).long() + 2 * (x[:, 0, 4:].sum((1, 2)) > 0).long()
    return Split(x, y, torch.arange(n))


def _model():
    seed_everything(0)
    return build_model("cnn", {"stem_width": 4, "depths": [1], "widths": [4]}, (1, 8, 8), 4)


def _run(cfg, ckpt=None, **kw):
    model = _model()
    res = train(model, _data(), _data(48, 1), cfg, CrossEntropyObjective(), device=CPU,
                checkpoint_dir=ckpt, run_fingerprint="fp", progress=False, **kw)
    return model, res


def _metrics(history):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in history]


def test_same_seed_gives_bit_identical_metrics():
    cfg = TrainSpec(epochs=3, batch_size=16, lr=0.01)
    m1, r1 = _run(cfg)
    m2, r2 = _run(cfg)
    assert _metrics(r1.history) == _metrics(r2.history)
    for a, b in zip(m1.state_dict().values(), m2.state_dict().values()):
        assert torch.equal(a, b)


def test_resume_after_crash_matches_uninterrupted_run(tmp_path):
    cfg = TrainSpec(epochs=4, batch_size=16, lr=0.01, optimizer="sgd")
    _, full = _run(cfg)

    class Crash(Exception):
        pass

    def crash_after_epoch_2(rec, epoch):
        if epoch == 1:
            raise Crash

    with pytest.raises(Crash):
        _run(cfg, ckpt=tmp_path, on_epoch=crash_after_epoch_2)
    _, meta = load_checkpoint(tmp_path / CKPT_NAME)
    assert meta["epoch"] == 1
    model, resumed = _run(cfg, ckpt=tmp_path)
    assert resumed.resumed_from == 2 and resumed.epochs_run == 2
    assert _metrics(resumed.history) == _metrics(full.history)


def test_keyboard_interrupt_keeps_checkpoint_and_resumes(tmp_path, capsys):
    cfg = TrainSpec(epochs=3, batch_size=16, lr=0.01)

    def interrupt(rec, epoch):
        if epoch == 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _run(cfg, ckpt=tmp_path, on_epoch=interrupt)
    assert (tmp_path / CKPT_NAME).exists()
    _, res = _run(cfg, ckpt=tmp_path)
    assert res.resumed_from == 1 and len(res.history) == 3


def test_checkpoint_from_other_config_is_ignored(tmp_path):
    cfg = TrainSpec(epochs=2, batch_size=16)
    model = _model()
    train(model, _data(), _data(48, 1), cfg, CrossEntropyObjective(), device=CPU, checkpoint_dir=tmp_path,
          run_fingerprint="A", progress=False)
    res = train(_model(), _data(), _data(48, 1), cfg, CrossEntropyObjective(), device=CPU,
                checkpoint_dir=tmp_path, run_fingerprint="B", progress=False)
    assert res.resumed_from is None and res.epochs_run == 2


class NaNAfter(nn.Module):
    """CE objective whose loss turns NaN at a given (epoch, step)."""

    def __init__(self, epoch, step):
        super().__init__()
        self.at = (epoch, step)
        self.epoch = 0
        self.step = 0

    def on_epoch_start(self, epoch, total):
        self.epoch, self.step = epoch, 0

    def forward(self, model, batch):
        logits = model(batch.x)
        loss = nn.functional.cross_entropy(logits, batch.y)
        if (self.epoch, self.step) == self.at:
            loss = loss * float("nan")
        self.step += 1
        return loss, logits, {"ce": loss.detach()}


def test_nan_loss_stops_with_epoch_and_step():
    cfg = TrainSpec(epochs=3, batch_size=16)
    with pytest.raises(NonFiniteLossError) as err:
        train(_model(), _data(), _data(48, 1), cfg, NaNAfter(1, 2), device=CPU, progress=False)
    assert err.value.epoch == 1 and err.value.step == 2
    assert "epoch 2, step 3" in str(err.value)
    assert math.isnan(err.value.value)


def test_lr_schedules():
    cos = TrainSpec(epochs=10, schedule="cosine")
    assert lr_factor(cos, 0) == 1.0 and lr_factor(cos, 5) == pytest.approx(0.5)
    step = TrainSpec(epochs=10, schedule="step", step_size=3, gamma=0.5)
    assert [lr_factor(step, e) for e in (0, 2, 3, 6)] == [1.0, 1.0, 0.5, 0.25]
    warm = TrainSpec(epochs=10, schedule="constant", warmup_epochs=3)
    assert lr_factor(warm, 0) == pytest.approx(0.25) and lr_factor(warm, 3) == 1.0


def test_adamw_and_sgd_both_learn():
    for opt in ("adamw", "sgd"):
        _, res = _run(TrainSpec(epochs=6, batch_size=16, lr=0.03 if opt == "sgd" else 0.01, optimizer=opt))
        assert res.history[-1]["train_loss"] < res.history[0]["train_loss"]


def test_damaged_checkpoint_starts_fresh(tmp_path):
    (tmp_path / CKPT_NAME).write_bytes(b"\x00garbage")
    _, res = _run(TrainSpec(epochs=2, batch_size=16), ckpt=tmp_path)
    assert res.resumed_from is None and len(res.history) == 2
    _, meta = load_checkpoint(tmp_path / CKPT_NAME)
    assert meta["epoch"] == 1
