"""The one training loop for every model: teacher, baseline, student and search trials.

- SGD or AdamW; cosine, step or constant schedule with linear warm-up (the learning rate is
  a pure function of the epoch, so nothing about the schedule needs checkpointing);
- a checkpoint per epoch (safetensors, atomic) and resume after a crash or Ctrl-C;
- a NaN/Inf loss stops the run with a message naming the epoch and step;
- deterministic on CPU: same spec and seed give bit-identical metrics, resumed or not;
- the history holds no wall times, so two runs write byte-identical artifacts (timings
  live in ``TrainResult.epoch_seconds`` and in the records passed to callbacks);
- gradient clipping over every parameter the optimizer updates (the objective's too);
- AMP on CUDA, with the grad scaler's state checkpointed.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from autokd.data.batches import IGNORE, Batch, BatchIterator, loss_count
from autokd.data.prepare import Split
from autokd.spec.pipeline import TrainSpec
from autokd.utils.chunks import rows_per_pass
from autokd.train.checkpoint import BEST_NAME, CKPT_NAME, BestWeights, load_checkpoint, restore, save_checkpoint
from autokd.train.device import autocast, grad_scaler


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or Inf; the run stops (a search marks only this trial failed)."""

    def __init__(self, epoch: int, step: int, value: float, parts: dict[str, float] | None = None):
        self.epoch, self.step, self.value, self.parts = epoch, step, value, parts or {}
        detail = ", ".join(f"{k}={v:.4g}" for k, v in self.parts.items())
        super().__init__(
            f"non-finite loss ({value}) at epoch {epoch + 1}, step {step + 1}"
            + (f" [{detail}]" if detail else "")
            + "; lower the learning rate or temperature, or enable grad_clip"
        )


class Objective(Protocol):
    """Computes the training loss of one batch. May own parameters (adapters, learnable T)."""

    def __call__(self, model: nn.Module, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """Return (loss, student logits, named loss parts)."""

    def parameters(self): ...


class CrossEntropyObjective(nn.Module):
    """Labels only: L = CE(z_s, y) (per sample; per token for a language model's (B, T, V) logits)."""

    def forward(self, model: nn.Module, batch: Batch):
        logits = model(batch.x, **batch.model_kwargs)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch.y.reshape(-1))
        return loss, logits, {"ce": loss.detach()}


def lr_factor(cfg: TrainSpec, epoch: int) -> float:
    """Learning-rate multiplier for a 0-based epoch."""
    if cfg.warmup_epochs and epoch < cfg.warmup_epochs:
        return (epoch + 1) / (cfg.warmup_epochs + 1)
    if cfg.schedule == "constant":
        return 1.0
    if cfg.schedule == "step":
        return cfg.gamma ** ((epoch - cfg.warmup_epochs) // cfg.step_size)
    span = max(cfg.epochs - cfg.warmup_epochs, 1)
    t = (epoch - cfg.warmup_epochs) / span
    return 0.5 * (1.0 + math.cos(math.pi * t))


def make_optimizer(cfg: TrainSpec, params) -> torch.optim.Optimizer:
    params = [p for p in params if p.requires_grad]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0,
            weight_decay=cfg.weight_decay,
        )
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


@torch.no_grad()
def count_correct(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``(logits.argmax(-1) == y).sum()``, the same count, without a full argmax.

    ``argmax`` over a language model's ``(B, T, V)`` logits is several times slower than a max
    on CPU. A prediction can only be right where ``y``'s logit equals the row's maximum (or the
    maximum is NaN); ``argmax`` (first maximum wins) is taken on those rows alone, so ties and
    NaNs count exactly as before.
    """
    if y.is_floating_point() or y.shape != logits.shape[:-1]:
        return (logits.argmax(-1) == y).sum()
    top = logits.amax(-1)
    counted = y != IGNORE  # chat data's prompt and padding targets are nobody's prediction
    target = torch.where(counted, y, torch.zeros_like(y)).long()
    hit = ((logits.gather(-1, target.unsqueeze(-1)).squeeze(-1) == top) | top.isnan()) & counted
    rows = hit.reshape(-1).nonzero().squeeze(1)
    flat = logits.reshape(-1, logits.shape[-1]).index_select(0, rows)
    return (flat.argmax(-1) == y.reshape(-1).index_select(0, rows)).sum()


@torch.no_grad()
def evaluate_split(model: nn.Module, split: Split, device: torch.device, batch_size: int = 512) -> dict[str, float]:
    """Loss and accuracy of ``model`` on a whole split (eval mode): per sample for a classifier,
    per predicted token for a language model (loss = mean NLL, exp(loss) the perplexity), in
    passes of ``batch_size`` rows, fewer where a language model's logits would pass
    :data:`autokd.utils.chunks.LOGITS_BUDGET`."""
    if len(split) == 0:
        return {}
    was = model.training
    model.eval()
    batch_size = rows_per_pass(model, split.x, device, batch_size)  # a language model's logits stay bounded
    total_loss, correct, count = 0.0, 0, 0
    for start in range(0, len(split), batch_size):
        x = split.x[start : start + batch_size].to(device)
        y = split.y[start : start + batch_size].to(device)
        kwargs = {} if split.segments is None else {"segments": split.segments[start : start + batch_size].to(device)}
        logits = model(x, **kwargs).float()
        # (B, K) class logits, or (B, T, V) next-token logits against (B, T) targets: per prediction
        # (a token target of IGNORE, chat data's prompt and padding, counts nowhere)
        total_loss += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="sum").item()
        correct += int(count_correct(logits, y))
        count += loss_count(y)
    model.train(was)
    return {"loss": total_loss / count, "accuracy": correct / count}


def accumulated(batches, k: int):
    """Lists of ``k`` consecutive batches (the last of an epoch may hold fewer): one optimizer step each."""
    group: list[Batch] = []
    for batch in batches:
        group.append(batch)
        if len(group) == k:
            yield group
            group = []
    if group:
        yield group


def fingerprint(*parts: Any) -> str:
    """A stable hash of JSON-able run descriptions (guards a resume against a changed spec)."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class TrainResult:
    """What a run learned, and (apart from it) how long it took.

    ``history`` has one record per epoch (epoch, lr, train/val loss and accuracy) and no
    wall times: it is what a stage writes to a cached artifact. ``epoch_seconds[i]`` is the
    wall time of epoch ``i + 1`` (restored from the checkpoint for resumed epochs);
    ``seconds`` is this call's wall time.
    """

    history: list[dict[str, float]]
    epochs_run: int
    resumed_from: int | None
    seconds: float
    final: dict[str, float] = field(default_factory=dict)
    epoch_seconds: list[float] = field(default_factory=list)


class Progress:
    """A rich progress bar on a terminal, one plain line per epoch otherwise."""

    def __init__(self, name: str, epochs: int, steps: int, enabled: bool = True):
        self.name, self.epochs, self.steps = name, epochs, steps
        self.enabled = enabled
        self.tty = enabled and sys.stdout.isatty()
        self._bar = None
        if self.tty:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress as RichProgress, TextColumn, TimeRemainingColumn

            self._bar = RichProgress(
                TextColumn(f"[bold]{name}[/]"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[info]}"), TimeRemainingColumn(), transient=False,
            )
            self._bar.start()
            self._task = self._bar.add_task(name, total=epochs * steps, info="")

    def skip_to(self, epoch: int) -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=epoch * self.steps)

    def step(self) -> None:
        if self._bar is not None:
            self._bar.advance(self._task)

    def epoch(self, rec: dict[str, float]) -> None:
        info = (
            f"epoch {int(rec['epoch'])}/{self.epochs} loss {rec['train_loss']:.4f}"
            + (f" acc {rec['train_accuracy']:.4f}" if "train_accuracy" in rec else "")
            + (f" val_acc {rec['val_accuracy']:.4f}" if "val_accuracy" in rec else "")
            + f" lr {rec['lr']:.2e} {rec['seconds']:.1f}s"
        )
        if self._bar is not None:
            self._bar.update(self._task, info=info)
        elif self.enabled:
            print(f"[{self.name}] {info}", flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


def best_epoch(history: list[dict[str, float]]) -> int | None:
    """Index of the epoch with the lowest validation loss (the first of equals); None without one."""
    losses = [(rec["val_loss"], i) for i, rec in enumerate(history)
              if "val_loss" in rec and math.isfinite(rec["val_loss"])]
    return min(losses)[1] if losses else None


def stalled(history: list[dict[str, float]], patience: int | None) -> bool:
    """Whether the validation loss has not improved for ``patience`` epochs (early stopping)."""
    best = best_epoch(history)
    return patience is not None and best is not None and len(history) - 1 - best >= patience


def train(
    model: nn.Module,
    train_split: Split,
    val_split: Split,
    cfg: TrainSpec,
    objective: nn.Module,
    *,
    device: torch.device,
    amp: bool | torch.dtype | None = False,
    checkpoint_dir: str | Path | None = None,
    run_fingerprint: str = "",
    name: str = "model",
    on_epoch: Callable[[dict[str, float], int], None] | None = None,
    replay: Callable[[dict[str, float]], None] | None = None,
    progress: bool = True,
    validate: Callable[[nn.Module, Split, torch.device], dict[str, float]] | None = None,
) -> TrainResult:
    """Train ``model`` with ``objective`` for ``cfg.epochs`` epochs, resuming if possible.

    ``on_epoch(record, epoch)`` is called after each epoch's checkpoint (a search trial
    reports there); ``replay(record)`` receives the epochs restored from a checkpoint so
    loggers can rebuild their history. The records passed to both carry the epoch's wall
    time as ``seconds``; those in ``TrainResult.history`` do not. With ``cfg.keep == "best"``
    the model ends with the weights of the lowest-validation-loss epoch (kept beside the
    checkpoint, so a resumed run ends alike) and ``final`` is that epoch's record. With
    ``cfg.patience`` the run ends early once the validation loss has not improved for that many
    epochs (the learning-rate schedule keeps its full length). ``validate(model, split, device)``
    gives an epoch's validation metrics (``loss`` at least; default :func:`evaluate_split`: NLL and
    accuracy), for a task whose targets are not classes.
    """
    start_time = time.perf_counter()
    model.to(device)
    objective.to(device)
    optimizer = make_optimizer(cfg, list(model.parameters()) + list(objective.parameters()))
    # clip what the optimizer updates: the model's parameters and the objective's (adapters)
    clipped = [p for group in optimizer.param_groups for p in group["params"]]
    scaler = grad_scaler(device, amp)
    batches = BatchIterator(train_split.x, train_split.y, cfg.batch_size, True, cfg.seed, cfg.augment,
                            segments=train_split.segments)

    history: list[dict[str, float]] = []
    epoch_seconds: list[float] = []
    first_epoch, resumed_from = 0, None
    ckpt_path = Path(checkpoint_dir) / CKPT_NAME if checkpoint_dir else None
    if ckpt_path is not None and ckpt_path.exists():
        try:
            tensors, meta = load_checkpoint(ckpt_path)
        except Exception as exc:  # a damaged file (e.g. power loss before the data hit disk)
            print(f"[{name}] checkpoint {ckpt_path} is unreadable ({exc}); starting fresh", flush=True)
            tensors, meta = {}, {}
        if meta and meta.get("fingerprint") == run_fingerprint:
            restore(tensors, meta, model, optimizer, objective, scaler)
            # (a checkpoint of older code never gets here: its fingerprint holds another code digest)
            history = meta["history"]
            epoch_seconds = [float(x) for x in meta["epoch_seconds"]]
            first_epoch = resumed_from = int(meta["epoch"]) + 1
            if progress and first_epoch < cfg.epochs:
                print(f"[{name}] resuming from checkpoint after epoch {first_epoch}/{cfg.epochs}", flush=True)
        elif meta and progress:
            print(f"[{name}] ignoring checkpoint from a different configuration; starting fresh", flush=True)
    if replay is not None:
        for rec, secs in zip(history, epoch_seconds):
            replay({**rec, "seconds": secs})

    best = BestWeights(Path(checkpoint_dir) / BEST_NAME if checkpoint_dir else None)
    bar = Progress(name, cfg.epochs, len(batches), enabled=progress)
    bar.skip_to(first_epoch)
    try:
        for epoch in range(first_epoch, cfg.epochs):
            if stalled(history, cfg.patience):
                break  # early stopping (also when a resumed run had already stalled)
            t0 = time.perf_counter()
            lr = cfg.lr * lr_factor(cfg, epoch)
            for group in optimizer.param_groups:
                group["lr"] = lr
            if hasattr(objective, "on_epoch_start"):
                objective.on_epoch_start(epoch, cfg.epochs)
            batches.set_epoch(epoch)
            model.train()
            objective.train()
            sum_loss, seen = 0.0, 0
            sum_correct = torch.zeros((), dtype=torch.long, device=device)  # read once an epoch (no sync a step)
            step = 0  # micro-batches seen this epoch
            for group in accumulated(batches, cfg.accumulate):
                micro = [b.to(device) for b in group]
                total = sum(loss_count(b.y) for b in micro)  # the step's loss tokens (samples for a classifier)
                optimizer.zero_grad(set_to_none=True)
                for batch in micro:
                    with autocast(device, amp):
                        loss, logits, parts = objective(model, batch)
                    value = loss.item()
                    if not math.isfinite(value):
                        raise NonFiniteLossError(epoch, step, value, {k: float(v) for k, v in parts.items()})
                    n = loss_count(batch.y)  # samples, or loss tokens for a language model
                    # a micro-batch's mean loss weighted by its share of the step's tokens: the step's mean
                    share = loss if len(micro) == 1 else loss * (n / total)
                    (scaler.scale(share) if scaler is not None else share).backward()
                    sum_loss += value * n
                    if not batch.y.is_floating_point():  # class or token targets (a regression has none)
                        sum_correct += count_correct(logits.detach(), batch.y)
                    seen += n
                    step += 1
                    bar.step()
                if scaler is not None:
                    if cfg.grad_clip:
                        scaler.unscale_(optimizer)
                        torch.nn.utils.clip_grad_norm_(clipped, cfg.grad_clip)
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    if cfg.grad_clip:
                        torch.nn.utils.clip_grad_norm_(clipped, cfg.grad_clip)
                    optimizer.step()
            rec = {
                "epoch": epoch + 1,
                "lr": lr,
                "train_loss": sum_loss / seen,
            }
            if not batch.y.is_floating_point():
                rec["train_accuracy"] = int(sum_correct) / seen
            val = (validate or evaluate_split)(model, val_split, device)
            rec.update({f"val_{k}": v for k, v in val.items()})
            history.append(rec)
            epoch_seconds.append(time.perf_counter() - t0)
            if cfg.keep == "best" and best_epoch(history) == len(history) - 1:
                best.save(model)  # before the checkpoint: a resumed run finds the best weights of its history
            if ckpt_path is not None:
                save_checkpoint(
                    ckpt_path, model, optimizer, objective,
                    {"epoch": epoch, "history": history, "epoch_seconds": epoch_seconds,
                     "fingerprint": run_fingerprint, "name": name},
                    scaler,
                )
            timed = {**rec, "seconds": epoch_seconds[-1]}
            bar.epoch(timed)
            if on_epoch is not None:
                on_epoch(timed, epoch)
    except KeyboardInterrupt:
        bar.close()
        done = len(history)
        print(
            f"\n[{name}] interrupted; {done} epoch(s) checkpointed"
            + (f" in {checkpoint_dir}; run again to resume" if ckpt_path else ""),
            file=sys.stderr, flush=True,
        )
        raise
    finally:
        bar.close()
    final = {k: v for k, v in (history[-1] if history else {}).items()}
    if cfg.keep == "best" and history and best_epoch(history) is not None:
        kept = best_epoch(history)
        if kept != len(history) - 1:
            best.load(model)
        final = {**history[kept], "kept_epoch": history[kept]["epoch"]}
    return TrainResult(
        history=history,
        epochs_run=len(history) - (resumed_from or 0),
        resumed_from=resumed_from,
        seconds=time.perf_counter() - start_time,
        final=final,
        epoch_seconds=epoch_seconds,
    )
