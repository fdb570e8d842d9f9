"""The training loop: determinism, checkpoint/resume, timings, NaN stop, schedules, clipping,
the AMP grad scaler's checkpointed state."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.optimizer import register_optimizer_step_pre_hook

import autokd.train.trainer as trainer_module
from autokd.data.prepare import Split
from autokd.models import build_model
from autokd.spec.pipeline import TrainSpec
from autokd.train import CrossEntropyObjective, NonFiniteLossError, lr_factor, seed_everything, train
from autokd.train.checkpoint import CKPT_NAME, load_checkpoint, restore, save_checkpoint

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


class Crash(Exception):
    pass


def crash_after_epoch_2(rec, epoch):
    if epoch == 1:
        raise Crash


def test_same_seed_gives_bit_identical_metrics():
    cfg = TrainSpec(epochs=3, batch_size=16, lr=0.01)
    m1, r1 = _run(cfg)
    m2, r2 = _run(cfg)
    assert r1.history == r2.history  # whole records: nothing run-specific in them
    for a, b in zip(m1.state_dict().values(), m2.state_dict().values()):
        assert torch.equal(a, b)


def test_resume_after_crash_matches_uninterrupted_run(tmp_path):
    cfg = TrainSpec(epochs=4, batch_size=16, lr=0.01, optimizer="sgd")
    _, full = _run(cfg)
    with pytest.raises(Crash):
        _run(cfg, ckpt=tmp_path, on_epoch=crash_after_epoch_2)
    _, meta = load_checkpoint(tmp_path / CKPT_NAME)
    assert meta["epoch"] == 1
    model, resumed = _run(cfg, ckpt=tmp_path)
    assert resumed.resumed_from == 2 and resumed.epochs_run == 2
    assert resumed.history == full.history


def test_history_has_no_wall_times_which_stay_on_the_result_and_callbacks(tmp_path):
    cfg = TrainSpec(epochs=3, batch_size=16, lr=0.01)
    first = []
    with pytest.raises(Crash):
        _run(cfg, ckpt=tmp_path, on_epoch=lambda rec, epoch: (first.append(rec), crash_after_epoch_2(rec, epoch)))
    seen, replayed = [], []
    _, res = _run(cfg, ckpt=tmp_path, on_epoch=lambda rec, epoch: seen.append(rec), replay=replayed.append)
    assert len(res.history) == 3 and all("seconds" not in rec for rec in res.history)
    assert set(res.history[0]) == {"epoch", "lr", "train_loss", "train_accuracy", "val_loss", "val_accuracy"}
    # the timings: two epochs restored from the checkpoint, one run now
    assert len(res.epoch_seconds) == 3 and all(t > 0 for t in res.epoch_seconds)
    assert res.epoch_seconds[:2] == [rec["seconds"] for rec in first]
    assert [rec["seconds"] for rec in replayed + seen] == res.epoch_seconds
    assert [{k: v for k, v in rec.items() if k != "seconds"} for rec in replayed + seen] == res.history


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


class OwnParameterObjective(nn.Module):
    """CE plus a steep penalty on a parameter the objective owns (like a feature adapter's)."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.full((3,), 10.0))

    def forward(self, model, batch):
        logits = model(batch.x)
        ce = F.cross_entropy(logits, batch.y)
        return ce + 50.0 * (self.w**2).sum(), logits, {"ce": ce.detach()}


def test_grad_clip_covers_the_objectives_parameters():
    clip = 0.05
    model, objective = _model(), OwnParameterObjective()
    params = list(model.parameters()) + list(objective.parameters())
    norms, objective_norms = [], []

    def record(optimizer, args, kwargs):  # runs right before every optimizer.step()
        grads = [p.grad.double() for p in params if p.grad is not None]
        norms.append(torch.linalg.vector_norm(torch.cat([g.flatten() for g in grads])).item())
        objective_norms.append(objective.w.grad.norm().item())

    handle = register_optimizer_step_pre_hook(record)
    try:
        train(model, _data(), _data(48, 1), TrainSpec(epochs=1, batch_size=16, grad_clip=clip), objective,
              device=CPU, progress=False)
    finally:
        handle.remove()
    assert len(norms) == 6  # 96 samples / 16
    assert max(norms) <= clip * (1 + 1e-5)
    assert min(objective_norms) > 0  # clipped, not left out: the adapter still learns


def _scaler_with_history():
    """A CPU grad scaler that has backed off once (an overflow) and then grown once."""
    model = _model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**12, growth_interval=3)
    data = _data(16)
    for step in range(6):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(data.x), data.y) * (float("inf") if step == 0 else 1.0)
        scaler.scale(loss).backward()
        scaler.step(optimizer)  # skipped at step 0 (inf gradients)
        scaler.update()
    return model, optimizer, scaler


def test_checkpoint_round_trips_the_grad_scaler_state(tmp_path):
    model, optimizer, scaler = _scaler_with_history()
    saved = scaler.state_dict()
    default = torch.amp.GradScaler("cpu").state_dict()
    assert saved["scale"] != default["scale"] and saved["_growth_tracker"] != default["_growth_tracker"]
    save_checkpoint(tmp_path / CKPT_NAME, model, optimizer, None, {"epoch": 0}, scaler)
    tensors, meta = load_checkpoint(tmp_path / CKPT_NAME)
    assert meta["grad_scaler"]["scale"] == saved["scale"]  # in the JSON metadata, no pickle
    fresh_model = _model()
    fresh_scaler = torch.amp.GradScaler("cpu")
    restore(tensors, meta, fresh_model, torch.optim.SGD(fresh_model.parameters(), lr=0.01), None, fresh_scaler)
    assert fresh_scaler.state_dict() == saved
    assert fresh_scaler.get_scale() == saved["scale"]


def _recording_scalers(monkeypatch, make):
    made = []

    def factory(device, amp):
        made.append(make(device, amp))
        return made[-1]

    monkeypatch.setattr(trainer_module, "grad_scaler", factory)
    return made


def test_resume_restores_the_grad_scaler(tmp_path, monkeypatch):
    """The trainer checkpoints its scaler: a resumed run ends with the uninterrupted run's
    scale and growth tracker (a CPU scaler stands in for CUDA AMP's)."""
    made = _recording_scalers(monkeypatch, lambda d, a: torch.amp.GradScaler("cpu", init_scale=256.0, growth_interval=5))
    cfg = TrainSpec(epochs=4, batch_size=16, lr=0.01, optimizer="sgd")
    full_model, _ = _run(cfg)
    full = made[-1].state_dict()
    assert full["scale"] == 256.0 * 2**4  # 24 steps: grown four times
    with pytest.raises(Crash):
        _run(cfg, ckpt=tmp_path, on_epoch=crash_after_epoch_2)
    model, res = _run(cfg, ckpt=tmp_path)
    assert res.resumed_from == 2
    assert made[-1].state_dict() == full
    for a, b in zip(model.state_dict().values(), full_model.state_dict().values()):
        assert torch.equal(a, b)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA AMP")
def test_cuda_amp_resume_matches_uninterrupted_run(tmp_path, monkeypatch):
    made = _recording_scalers(monkeypatch, trainer_module.grad_scaler)
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    cuda = torch.device("cuda")
    cfg = TrainSpec(epochs=4, batch_size=16, lr=0.01, optimizer="sgd")

    def run(**kw):
        model = _model()
        res = train(model, _data(), _data(48, 1), cfg, CrossEntropyObjective(), device=cuda, amp=True,
                    run_fingerprint="fp", progress=False, **kw)
        return model, res

    full_model, full = run()
    full_scaler = made[-1].state_dict()
    with pytest.raises(Crash):
        run(checkpoint_dir=tmp_path, on_epoch=crash_after_epoch_2)
    model, resumed = run(checkpoint_dir=tmp_path)
    assert resumed.resumed_from == 2 and resumed.history == full.history
    assert made[-1].state_dict() == full_scaler
    for a, b in zip(model.state_dict().values(), full_model.state_dict().values()):
        assert torch.equal(a, b)


def test_count_correct_is_argmax_accuracy_with_ties_and_nans():
    from autokd.train.trainer import count_correct

    g = torch.Generator().manual_seed(0)
    for trial in range(100):
        x = torch.randint(0, 3, (4, 5, 6), generator=g).float()  # small integers: many tied maxima
        if trial % 3 == 0:
            x[0, 1, 2] = float("nan")  # argmax takes a NaN as the maximum
        y = torch.randint(0, 6, (4, 5), generator=g)
        y[1] = x[1].argmax(-1)  # some right answers
        assert int(count_correct(x, y)) == int((x.argmax(-1) == y).sum())
        flat = x.reshape(-1, 6)  # a classifier's (B, K) logits and (B,) labels
        assert int(count_correct(flat, y.reshape(-1))) == int((flat.argmax(-1) == y.reshape(-1)).sum())
    assert int(count_correct(torch.zeros(2, 3), torch.tensor([0, 1]))) == 1  # all tied: the first index wins


def _val_loss(model):
    return trainer_module.evaluate_split(model, _data(48, 1), CPU)["loss"]


@pytest.mark.parametrize("with_checkpoint", [False, True])
def test_keep_best_ends_with_the_lowest_validation_loss_epoch(tmp_path, with_checkpoint):
    """An over-long run on 96 samples overfits: keep=best ends with the best epoch's weights,
    not the last epoch's, with or without a checkpoint folder."""
    cfg = TrainSpec(epochs=12, batch_size=16, lr=0.05, weight_decay=0.0, schedule="constant", keep="best")
    model, res = _run(cfg, ckpt=tmp_path if with_checkpoint else None)
    losses = [r["val_loss"] for r in res.history]
    kept = losses.index(min(losses))
    assert kept != len(losses) - 1, "the setting must overfit for this test to mean something"
    assert res.final["kept_epoch"] == kept + 1 and res.final["val_loss"] == losses[kept]
    assert _val_loss(model) == pytest.approx(losses[kept], rel=1e-6)
    last_model, last = _run(cfg.model_copy(update={"keep": "last"}))
    assert last.history == res.history  # the selection changes nothing in training
    assert _val_loss(last_model) == pytest.approx(losses[-1], rel=1e-6)


def test_keep_best_after_a_crash_ends_with_the_same_weights(tmp_path):
    cfg = TrainSpec(epochs=12, batch_size=16, lr=0.05, weight_decay=0.0, schedule="constant", keep="best")
    full, _ = _run(cfg)
    with pytest.raises(Crash):
        _run(cfg, ckpt=tmp_path, on_epoch=crash_after_epoch_2)
    resumed, res = _run(cfg, ckpt=tmp_path)
    assert res.resumed_from == 2
    for a, b in zip(full.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)


def test_patience_stops_early_and_keeps_the_same_best_weights(tmp_path):
    cfg = TrainSpec(epochs=12, batch_size=16, lr=0.05, weight_decay=0.0, schedule="constant", keep="best")
    full_model, full = _run(cfg)
    kept = full.final["kept_epoch"]
    losses = [r["val_loss"] for r in full.history]
    # the first epoch after which `patience` epochs pass without a new best
    patience = 2
    stop = next(i for i in range(len(losses)) if i - losses.index(min(losses[:i + 1])) >= patience)
    model, res = _run(cfg.model_copy(update={"patience": patience}), ckpt=tmp_path)
    assert len(res.history) == stop + 1 < 12 and res.history == full.history[:stop + 1]
    best_so_far = losses.index(min(losses[:stop + 1])) + 1
    assert res.final["kept_epoch"] == best_so_far
    if best_so_far == kept:  # the early best is the run's best: the same weights as the full run
        for a, b in zip(full_model.state_dict().values(), model.state_dict().values()):
            assert torch.equal(a, b)
    again_model, again = _run(cfg.model_copy(update={"patience": patience}), ckpt=tmp_path)  # resumed: stops at once
    assert again.history == res.history and again.epochs_run == 0
    for a, b in zip(model.state_dict().values(), again_model.state_dict().values()):
        assert torch.equal(a, b)


def test_validation_of_a_language_model_is_chunked_to_the_logits_budget(monkeypatch):
    """At a vocabulary x context where 512 windows' logits would pass the budget, validation runs
    in smaller passes (each within it) and gives the figures of one pass; a classifier's split
    and the shipped LM pipeline's size keep one 512-row pass."""
    import autokd.utils.chunks as chunks
    from autokd.data.prepare import Split
    from autokd.models.registry import build_model
    from autokd.train.trainer import evaluate_split
    from autokd.utils.chunks import rows_per_pass

    torch.manual_seed(0)
    model = build_model("decoder", {"layers": 1, "width": 16, "heads": 2}, (12,), 50)
    x = torch.randint(0, 50, (40, 12))
    split = Split(x=x, y=torch.roll(x, -1, dims=1), index=torch.arange(40))
    whole = evaluate_split(model, split, torch.device("cpu"))
    rows: list[int] = []
    original = model.forward
    monkeypatch.setattr(model, "forward", lambda inp: rows.append(len(inp)) or original(inp))
    monkeypatch.setattr(chunks, "LOGITS_BUDGET", 7 * 12 * 50)  # 7 windows' logits
    chunked = evaluate_split(model, split, torch.device("cpu"))
    assert rows == [1] + [7] * 5 + [5]  # the probe, then passes of at most 7 windows
    assert chunked["accuracy"] == whole["accuracy"]
    assert abs(chunked["loss"] - whole["loss"]) <= 1e-6 * whole["loss"]
    monkeypatch.undo()
    cpu = torch.device("cpu")
    shipped = build_model("decoder", {"layers": 1, "width": 16, "heads": 2}, (128,), 1024)  # pipelines/lm.yaml's V, T
    assert rows_per_pass(shipped, torch.zeros(600, 128, dtype=torch.long), cpu, 512) == 512
    gpt2 = build_model("decoder", {"layers": 1, "width": 16, "heads": 2}, (1024,), 32768)
    assert rows_per_pass(gpt2, torch.zeros(600, 1024, dtype=torch.long), cpu, 512) == 2  # 2 x 1024 x 32K = 256 MiB
    assert rows_per_pass(shipped, torch.zeros(600, 64), cpu, 512) == 512  # a classifier's float inputs: not probed


@pytest.mark.parametrize("masked", [False, True], ids=["all-tokens", "completion-masks"])
@pytest.mark.parametrize("method", ["ce", "fkl", "rkl", "jsd", "tvd", "skl", "akl"])
def test_accumulated_micro_batches_equal_one_batch_in_float64(method, masked):
    """``accumulate: 4`` over micro-batches of 4 windows (4, 4, 4 and a last one of 2) takes the
    optimizer step of one batch of 14: each micro-batch's mean loss is weighted by its share of
    the step's tokens, so unequal micro-batches count per token, as one batch does (a plain mean
    of the four means would weight the last two windows double). With chat data's loss masks
    (16 windows, window i's first i mod 8 targets ignored, so the micro-batches hold 12 to 20
    loss tokens), 4 micro-batches x accumulate 4 equal one batch of 16: the share is of the
    step's *loss* tokens, for CE and every divergence (the accumulation bug TRL users hit)."""
    from autokd.data.prepare import Split
    from autokd.models.registry import build_model
    from autokd.train.lm_objective import LMDistillObjective
    from autokd.train.trainer import CrossEntropyObjective, train

    vocab, context, n = 40, 8, (16 if masked else 14)
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, vocab, (n, context), generator=g)
    y = torch.roll(x, -1, dims=1)
    if masked:
        y[torch.arange(context)[None, :] < (torch.arange(n) % context)[:, None]] = -100
        shuffled = torch.randperm(n, generator=torch.Generator().manual_seed(0))  # epoch 0, seed 0: the order
        per_micro = [int((y[shuffled[i:i + 4]] != -100).sum()) for i in range(0, n, 4)]
        assert len(set(per_micro)) > 1  # the micro-batches' loss tokens differ
    split = Split(x=x, y=y, index=torch.arange(n))
    torch.manual_seed(3)
    teacher = build_model("decoder", {"layers": 1, "width": 16, "heads": 2}, (context,), vocab).double()

    def run(batch_size: int, accumulate: int):
        torch.manual_seed(1)
        model = build_model("decoder", {"layers": 1, "width": 16, "heads": 2, "dropout": 0.0}, (context,),
                            vocab).double()
        objective = (CrossEntropyObjective() if method == "ce"
                     else LMDistillObjective(method, {}, 0.5, teacher=teacher))
        cfg = TrainSpec(epochs=1, batch_size=batch_size, accumulate=accumulate, optimizer="sgd", momentum=0.0,
                        lr=0.5, weight_decay=0.0, schedule="constant")
        train(model, split, split, cfg, objective, device=torch.device("cpu"), progress=False)
        return torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    torch.manual_seed(1)
    start = torch.cat([p.detach().reshape(-1) for p in build_model(
        "decoder", {"layers": 1, "width": 16, "heads": 2, "dropout": 0.0}, (context,), vocab).double().parameters()])
    one, four = run(n, 1), run(4, 4)
    moved = (one - start).abs().max().item()
    assert moved > 1e-3  # the step moved the weights
    assert (one - four).abs().max().item() <= 1e-6 * moved
