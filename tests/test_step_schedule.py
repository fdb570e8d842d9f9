"""Step-based schedules (warm-up + cosine per optimizer step) and checkpoints inside an epoch."""

from __future__ import annotations

import math

import pytest
import torch

from autokd.data.prepare import Split
from autokd.models.registry import build_model
from autokd.spec.lm import SequenceSpec
from autokd.spec.pipeline import TrainSpec
from autokd.train.checkpoint import CKPT_NAME, load_checkpoint
from autokd.train.lm_objective import LMDistillObjective
from autokd.train.schedule import step_lr_factor
from autokd.train.trainer import train

CPU = torch.device("cpu")


def test_step_factor_warms_up_then_follows_the_cosine_per_step():
    cfg = TrainSpec(schedule_unit="step", warmup_steps=4, schedule="cosine")
    assert [step_lr_factor(cfg, s, 20) for s in range(4)] == [0.2, 0.4, 0.6, 0.8]
    assert step_lr_factor(cfg, 4, 20) == 1.0  # the cosine's start
    assert step_lr_factor(cfg, 12, 20) == pytest.approx(0.5)  # half-way through the 16 cosine steps
    assert step_lr_factor(cfg, 19, 20) == pytest.approx(0.5 * (1 + math.cos(math.pi * 15 / 16)))
    with pytest.raises(ValueError, match="warmup_steps"):
        TrainSpec(schedule_unit="step", warmup_epochs=1)


def _split(n=40, context=12, vocab=32, seed=0):
    x = torch.randint(0, vocab, (n, context + 1), generator=torch.Generator().manual_seed(seed))
    return Split(x=x[:, :-1].contiguous(), y=x[:, 1:].contiguous(), index=torch.arange(n))


def _student():
    torch.manual_seed(1)
    return build_model("decoder", {"layers": 1, "width": 16, "heads": 2, "dropout": 0.1}, (12,), 32)


def _objective(teacher):
    # on-policy: each step's draw and samples come from the (seed, epoch, step) generator
    return LMDistillObjective("fkl", {}, 0.5, teacher=teacher, sequence=SequenceSpec(mode="on_policy",
                                                                                     prompt_tokens=4, lmbda=0.5))


class Crash(Exception):
    pass


def test_a_run_killed_mid_epoch_resumes_from_the_step_checkpoint_bit_identically(tmp_path):
    """Dropout (the global RNG), accumulation, on-policy draws and a per-step cosine: a run that
    dies in the middle of its second epoch restarts at its last step checkpoint and ends with
    exactly the weights and history of a run never interrupted."""
    torch.manual_seed(0)
    teacher = build_model("decoder", {"layers": 1, "width": 16, "heads": 2}, (12,), 32)
    split, val = _split(), _split(8, seed=1)
    cfg = TrainSpec(epochs=2, batch_size=4, accumulate=2, lr=3e-3, schedule_unit="step", warmup_steps=3,
                    checkpoint_every=2)

    whole = _student()
    ref = train(whole, split, val, cfg, _objective(teacher), device=CPU, progress=False)

    model, objective = _student(), _objective(teacher)
    calls = {"n": 0}
    real = objective.forward

    def dying(m, batch):
        calls["n"] += 1
        if calls["n"] == 10 + 7:  # epoch 2 (10 micro-batches an epoch), inside its 4th step
            raise Crash
        return real(m, batch)

    objective.forward = dying
    with pytest.raises(Crash):
        train(model, split, val, cfg, objective, device=CPU, checkpoint_dir=tmp_path, progress=False)
    _, meta = load_checkpoint(tmp_path / CKPT_NAME)
    assert meta["epoch"] == 0 and meta["mid"]["epoch"] == 1 and meta["mid"]["groups"] == 3  # steps 5 + 3 = 8
    resumed = _student()
    res = train(resumed, split, val, cfg, _objective(teacher), device=CPU, checkpoint_dir=tmp_path, progress=False)
    assert res.resumed_from == 1
    assert res.history == ref.history
    for a, b in zip(whole.parameters(), resumed.parameters()):
        assert torch.equal(a, b)
    lrs = [rec["lr"] for rec in ref.history]
    assert lrs[-1] == pytest.approx(3e-3 * step_lr_factor(cfg, 9, 10))  # the last step's rate
