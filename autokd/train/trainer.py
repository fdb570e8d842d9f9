"""The one training loop for every model: teacher, baseline, student and search trials.

- SGD or AdamW; cosine, step or constant schedule with linear warm-up, per epoch or per
  optimizer step (:mod:`autokd.train.schedule`: the learning rate is a pure function of the
  epoch or the global step, so nothing about the schedule needs checkpointing);
- a checkpoint per epoch, and every ``checkpoint_every`` optimizer steps inside one
  (safetensors, atomic); a crash or Ctrl-C resumes from the last, bit-identically: a step
  checkpoint holds the epoch's running sums and the steps done, and the resumed epoch draws
  its batches again in the same order (and augmentation) and skips those steps;
- gradient accumulation (``accumulate`` micro-batches a step, each weighted by its share of the
  step's loss tokens: chat data's ignored targets count nowhere);
- a NaN/Inf loss stops the run with a message naming the epoch and step;
- deterministic on CPU: same spec and seed give bit-identical metrics, resumed or not;
- the history holds no wall times, so two runs write byte-identical artifacts (timings
  live in ``TrainResult.epoch_seconds`` and in the records passed to callbacks);
- gradient clipping over every parameter the optimizer updates (the objective's too);
- autocast at ``runtime.precision`` (fp16 on CUDA with the grad scaler's state checkpointed,
  bf16 on CPU and CUDA);
- data-parallel workers (``shard``, :mod:`autokd.train.distributed`): the same loop on each
  worker's slice of every batch, the gradients summed over workers before the step, rank 0
  writing the checkpoints.
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

from autokd.data.batches import Batch, BatchIterator, loss_count
from autokd.data.prepare import Split
from autokd.spec.pipeline import TrainSpec
from autokd.train.checkpoint import BEST_NAME, CKPT_NAME, BestWeights, load_checkpoint, restore, save_checkpoint
from autokd.train.device import autocast, grad_scaler
from autokd.train.progress import Progress
from autokd.train.schedule import lr_factor, make_optimizer, set_lr, step_lr_factor
from autokd.train.validation import count_correct, evaluate_split

__all__ = ["CrossEntropyObjective", "NonFiniteLossError", "TrainResult", "count_correct", "evaluate_split",
           "fingerprint", "lr_factor", "make_optimizer", "train"]


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


def _worker_rngs(shard) -> tuple[dict[str, torch.Tensor] | None, dict[str, int]]:
    """Every worker's generator states and the worker count, for a data-parallel checkpoint (none alone)."""
    if shard is None:
        return None, {}
    return shard.rng_states(), {"workers": shard.world}


def _sums(shard, sum_loss: float, seen: int, correct) -> tuple[float, int, int]:
    """An epoch's running loss sum, target count and correct count, over every worker."""
    if shard is None:
        return sum_loss, seen, int(correct)
    loss, n, c = shard.sum_values(sum_loss, seen, float(int(correct)))
    return loss, int(round(n)), int(round(c))


def _gathered(shard, model: nn.Module, optimizer) -> tuple[dict, dict] | None:
    """Sharded workers' full model and optimizer state (a collective) for rank 0 to write; else None."""
    return shard.full_state(model, optimizer) if shard is not None else None


def _clip(shard, params: list[nn.Parameter], max_norm: float) -> None:
    """Clip the gradient norm (over every worker's shards under fsdp)."""
    if shard is not None:
        shard.clip(params, max_norm)
    else:
        torch.nn.utils.clip_grad_norm_(params, max_norm)


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
    shard: Any = None,
    until: int | None = None,
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
    accuracy), for a task whose targets are not classes. ``shard`` (a
    :class:`~autokd.train.distributed.Shard`) makes this call one data-parallel worker. ``until``
    stops after that many epochs of the ``cfg.epochs`` run (its schedule unchanged; ``keep: best``
    is applied only by a call without ``until``): a caller that trains a run an epoch at a time
    (a multi-worker search trial) resumes it from the checkpoint with the next ``until``.
    """
    main = shard is None or shard.main  # the one process that writes checkpoints
    start_time = time.perf_counter()
    model.to(device)
    objective.to(device)
    if shard is not None:
        shard.wrap(model, objective, device)  # fsdp: the parameters sharded before the optimizer sees them
    optimizer = make_optimizer(cfg, list(model.parameters()) + list(objective.parameters()))
    # clip what the optimizer updates: the model's parameters and the objective's (adapters)
    clipped = [p for group in optimizer.param_groups for p in group["params"]]
    scaler = grad_scaler(device, amp)
    batches = BatchIterator(train_split.x, train_split.y, cfg.batch_size, True, cfg.seed, cfg.augment,
                            segments=train_split.segments)

    history: list[dict[str, float]] = []
    epoch_seconds: list[float] = []
    first_epoch, resumed_from, mid = 0, None, None
    steps_per_epoch = -(-len(batches) // cfg.accumulate)  # optimizer steps (the last group may be short)
    total_steps = cfg.epochs * steps_per_epoch
    ckpt_path = Path(checkpoint_dir) / CKPT_NAME if checkpoint_dir else None
    if ckpt_path is not None and ckpt_path.exists():
        try:
            tensors, meta = load_checkpoint(ckpt_path)
        except Exception as exc:  # a damaged file (e.g. power loss before the data hit disk)
            print(f"[{name}] checkpoint {ckpt_path} is unreadable ({exc}); starting fresh", flush=True)
            tensors, meta = {}, {}
        if meta and meta.get("fingerprint") == run_fingerprint:
            if shard is not None:
                tensors = shard.local(tensors, model, optimizer)  # fsdp: this worker's slices
            restore(tensors, meta, model, optimizer, objective, scaler)
            if shard is not None:
                shard.restore_rng(tensors, meta)  # each worker its own generator, not rank 0's
            # (a checkpoint of older code never gets here: its fingerprint holds another code digest)
            history = meta["history"]
            epoch_seconds = [float(x) for x in meta["epoch_seconds"]]
            first_epoch = resumed_from = int(meta["epoch"]) + 1
            mid = meta.get("mid")  # a checkpoint inside epoch first_epoch (train.checkpoint_every)
            if progress and first_epoch < cfg.epochs:
                where = f", step {mid['groups']}/{steps_per_epoch} of epoch {first_epoch + 1}" if mid else ""
                print(f"[{name}] resuming from checkpoint after epoch {first_epoch}/{cfg.epochs}{where}", flush=True)
        elif meta and progress:
            print(f"[{name}] ignoring checkpoint from a different configuration; starting fresh", flush=True)
    if replay is not None:
        for rec, secs in zip(history, epoch_seconds):
            replay({**rec, "seconds": secs})

    best = BestWeights(Path(checkpoint_dir) / BEST_NAME if checkpoint_dir and main else None)
    bar = Progress(name, cfg.epochs, len(batches), enabled=progress)
    bar.skip_to(first_epoch)
    try:
        for epoch in range(first_epoch, cfg.epochs if until is None else min(cfg.epochs, until)):
            if stalled(history, cfg.patience):
                break  # early stopping (also when a resumed run had already stalled)
            t0 = time.perf_counter()
            lr = cfg.lr * lr_factor(cfg, epoch)
            set_lr(optimizer, lr)
            if hasattr(objective, "on_epoch_start"):
                objective.on_epoch_start(epoch, cfg.epochs)
            batches.set_epoch(epoch)
            model.train()
            objective.train()
            sum_loss, seen = 0.0, 0
            sum_correct = torch.zeros((), dtype=torch.long, device=device)  # read once an epoch (no sync a step)
            step = 0  # micro-batches seen this epoch
            skip = 0
            if mid is not None and int(mid["epoch"]) == epoch:  # resume inside this epoch
                skip, step = int(mid["groups"]), int(mid["step"])
                if main:  # the checkpoint holds the sums over every worker: counted once
                    sum_loss, seen = float(mid["sum_loss"]), int(mid["seen"])
                    sum_correct += int(mid["sum_correct"])
                if mid.get("objective_step") is not None:
                    objective.step = int(mid["objective_step"])  # the on-policy (seed, epoch, step) draws
            mid = None
            for gi, group in enumerate(accumulated(batches, cfg.accumulate)):
                if gi < skip:  # done before the checkpoint: drawn again (the same order and augmentation), not run
                    for _ in group:
                        bar.step()
                    continue
                if cfg.schedule_unit == "step":
                    lr = cfg.lr * step_lr_factor(cfg, epoch * steps_per_epoch + gi, total_steps)
                    set_lr(optimizer, lr)
                total = sum(loss_count(b.y) for b in group)  # the step's loss tokens (samples for a classifier)
                micro = [(shard.take(b) if shard is not None else b).to(device) for b in group]
                optimizer.zero_grad(set_to_none=True)
                for batch, whole in zip(micro, group):
                    if shard is not None and batch.x.shape[0] == 0:  # fewer rows than workers: nothing here
                        if shard.sharded:  # but FSDP's forward and backward are collectives: join at weight 0
                            with autocast(device, amp):
                                idle = objective(model, shard.first_row(whole).to(device))[0]
                            (idle * 0.0).backward()
                        step += 1
                        bar.step()
                        continue
                    with autocast(device, amp):
                        loss, logits, parts = objective(model, batch)
                    value = loss.item()
                    if not math.isfinite(value):
                        raise NonFiniteLossError(epoch, step, value, {k: float(v) for k, v in parts.items()})
                    n = loss_count(batch.y)  # samples, or loss tokens for a language model
                    # a micro-batch's mean loss weighted by its share of the step's tokens: the step's mean
                    share = loss if len(micro) == 1 and shard is None else loss * (n / total)
                    (scaler.scale(share) if scaler is not None else share).backward()
                    sum_loss += value * n
                    if not batch.y.is_floating_point():  # class or token targets (a regression has none)
                        sum_correct += count_correct(logits.detach(), batch.y)
                    seen += n
                    step += 1
                    bar.step()
                if shard is not None:
                    shard.sum_grads(clipped)  # every worker now holds the global batch's gradient
                if scaler is not None:
                    if cfg.grad_clip:
                        scaler.unscale_(optimizer)
                        _clip(shard, clipped, cfg.grad_clip)
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    if cfg.grad_clip:
                        _clip(shard, clipped, cfg.grad_clip)
                    optimizer.step()
                done = epoch * steps_per_epoch + gi + 1
                if ckpt_path is not None and cfg.checkpoint_every and done % cfg.checkpoint_every == 0 \
                        and gi + 1 < steps_per_epoch:  # the epoch's end writes its own
                    g_loss, g_seen, g_correct = _sums(shard, sum_loss, seen, sum_correct)
                    here = {"epoch": epoch, "groups": gi + 1, "step": step, "sum_loss": g_loss, "seen": g_seen,
                            "sum_correct": g_correct, "objective_step": getattr(objective, "step", None)}
                    rngs, workers = _worker_rngs(shard)
                    state = _gathered(shard, model, optimizer)
                    if main:
                        save_checkpoint(ckpt_path, model, optimizer, objective,
                                        {"epoch": epoch - 1, "history": history, "epoch_seconds": epoch_seconds,
                                         "fingerprint": run_fingerprint, "name": name, "mid": here, **workers},
                                        scaler, rngs, state)
            sum_loss, seen, correct = _sums(shard, sum_loss, seen, sum_correct)  # over every worker
            rec = {
                "epoch": epoch + 1,
                "lr": lr,
                "train_loss": sum_loss / seen,
            }
            if not batch.y.is_floating_point():
                rec["train_accuracy"] = correct / seen
            if validate is None and shard is not None:
                val = shard.evaluate(model, val_split, device)  # each worker its rows, the sums over all
            else:
                val = (validate or evaluate_split)(model, val_split, device)
            rec.update({f"val_{k}": v for k, v in val.items()})
            history.append(rec)
            epoch_seconds.append(time.perf_counter() - t0)
            keep_now = cfg.keep == "best" and best_epoch(history) == len(history) - 1
            state = _gathered(shard, model, optimizer) if keep_now or ckpt_path is not None else None
            if keep_now and main:  # before the checkpoint: a resumed run finds the best weights of its history
                best.save(model, None if state is None else state[0])
            if ckpt_path is not None:
                rngs, workers = _worker_rngs(shard)
                if main:
                    save_checkpoint(
                        ckpt_path, model, optimizer, objective,
                        {"epoch": epoch, "history": history, "epoch_seconds": epoch_seconds,
                         "fingerprint": run_fingerprint, "name": name, **workers},
                        scaler, rngs, state,
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
    if cfg.keep == "best" and history and best_epoch(history) is not None and main and until is None:
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
