"""Data-parallel training on Ray Train workers (``runtime.workers: N``), through the one trainer.

:func:`fit_on_workers` starts ``N`` Ray Train workers (``ray.train.torch.TorchTrainer``: a gloo
process group on CPU, NCCL on CUDA) and runs :func:`autokd.train.trainer.train` in each with a
:class:`Shard`. Every worker holds the whole model (data parallel, DDP's arithmetic) and draws
the same global batches in the same order as a single process would (the batch iterator is
seeded by the spec, not the rank); each takes its contiguous slice of every micro-batch, by
row index (the cached teacher outputs are read by the same indices). A worker's loss is weighted
by its slice's share of the step's loss targets (samples, or tokens that count), so after the
gradients are summed over the workers (one all-reduce of a flat buffer per optimizer step,
before clipping) every worker holds the gradient of the global batch and takes the same
optimizer step. Epoch sums (loss, targets, correct) are summed over workers; validation too
(each worker evaluates its rows of the split; a custom ``validate`` runs whole on each). Rank 0 alone writes checkpoints (atomically,
as a single process does) and the best weights; every worker resumes from them, so a run can
resume on any number of workers. After the workers finish, the driver restores the final
checkpoint with the same ``train`` call a single process makes (no epoch left to run), so the
history, ``keep: best`` and the DVCLive logs come out as they do in one process.

Not the same bytes as one process: the global batch's loss is a sum of per-worker partial sums
(float addition in another order), so weights agree with a one-process run at the same global
batch to rounding, not bitwise (``tests/test_distributed.py`` states the tolerance). BatchNorm
normalises each worker's slice with its own statistics (as ``DistributedDataParallel`` without
``SyncBatchNorm``), so a model with BatchNorm also differs by more than rounding. Dropout draws
from each worker's own generator (seeded by the spec's seed and the rank); the checkpoint holds
every worker's generator state, so a run resumed on as many workers draws exactly what the
uninterrupted run would.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import torch
from torch import nn


class WorkersFailedError(RuntimeError):
    """A data-parallel run stopped (a worker died or raised); its last checkpoint is kept."""


@dataclass(frozen=True)
class Shard:
    """This worker's place in a data-parallel run: rank ``rank`` of ``world`` workers."""

    rank: int
    world: int
    strategy: str = "ddp"  # or "fsdp": parameters, gradients and optimizer state sharded (autokd.train.fsdp)

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def sharded(self) -> bool:
        return self.strategy == "fsdp"

    def wrap(self, model: nn.Module, objective: nn.Module, device: torch.device) -> None:
        """fsdp: shard the model and the objective's live teacher over the workers (before the
        optimizer is made); ddp: nothing (every worker holds the whole model)."""
        if not self.sharded:
            return
        from autokd.train.fsdp import shard_model

        shard_model(model, device, self.world)
        teacher = getattr(objective, "teacher", None)
        if isinstance(teacher, nn.Module):
            shard_model(teacher, device, self.world, root_reshard=True)  # forward only: freed after each call

    def full_state(self, model: nn.Module, optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
        """fsdp: the gathered model and optimizer state for rank 0 to write (a collective); ddp: None
        (rank 0 reads its own whole copies)."""
        if not self.sharded:
            return None
        from autokd.train.fsdp import full_state

        return full_state(model, optimizer, keep=self.main)

    def local(self, tensors: dict[str, torch.Tensor], model: nn.Module, optimizer) -> dict[str, torch.Tensor]:
        """A checkpoint's tensors as this worker loads them: its slices under fsdp, whole under ddp."""
        if not self.sharded:
            return tensors
        from autokd.train.fsdp import local_state

        return local_state(tensors, model, optimizer)

    def clip(self, params: list[nn.Parameter], max_norm: float) -> None:
        """Clip the global gradient's norm (every worker holds the same after :meth:`sum_grads`)."""
        if self.sharded:
            from autokd.train.fsdp import clip_grad_norm

            clip_grad_norm(params, max_norm)
        else:
            torch.nn.utils.clip_grad_norm_(params, max_norm)

    @staticmethod
    def first_row(batch):
        """A batch's first row: what a worker with an empty slice runs at weight zero under fsdp,
        whose forward and backward every worker must join."""
        from autokd.data.batches import Batch

        seg = None if batch.segments is None else batch.segments[:1]
        return Batch(batch.x[:1], batch.y[:1], batch.idx[:1], batch.augmented, seg)

    def rows(self, n: int) -> slice:
        """This worker's contiguous rows of a batch of ``n`` (sizes differ by at most one)."""
        base, extra = divmod(n, self.world)
        lo = self.rank * base + min(self.rank, extra)
        return slice(lo, lo + base + (1 if self.rank < extra else 0))

    def take(self, batch):
        """This worker's slice of a :class:`~autokd.data.batches.Batch` (inputs, targets, indices, segments)."""
        from autokd.data.batches import Batch

        r = self.rows(int(batch.x.shape[0]))
        seg = None if batch.segments is None else batch.segments[r]
        return Batch(batch.x[r], batch.y[r], batch.idx[r], batch.augmented, seg)

    def take_split(self, split):
        """This worker's contiguous rows of a whole :class:`~autokd.data.prepare.Split`."""
        from autokd.data.prepare import Split

        r = self.rows(len(split))
        seg = None if split.segments is None else split.segments[r]
        return Split(split.x[r], split.y[r], split.index[r], seg)

    def evaluate(self, model: nn.Module, split, device) -> dict[str, float]:
        """:func:`~autokd.train.validation.evaluate_split` of the whole split, each worker
        evaluating its rows and the sums added over the workers."""
        from autokd.train.validation import split_sums

        if len(split) == 0:
            return {}
        mine = self.take_split(split)
        if not self.sharded:
            sums = split_sums(model, mine, device)
        else:  # FSDP forwards are collectives: each worker runs as many passes as the one with most rows
            from autokd.utils.chunks import rows_per_pass

            per_pass = rows_per_pass(model, split.x, device, 512)
            sums = split_sums(model, mine, device, per_pass)
            most = Shard(0, self.world).rows(len(split)).stop  # rank 0's slice is the largest
            idle = -(-most // per_pass) - -(-len(mine) // per_pass)
            was = model.training
            model.eval()
            with torch.no_grad():
                for _ in range(idle):
                    model(split.x[:1].to(device),
                          **({} if split.segments is None else {"segments": split.segments[:1].to(device)}))
            model.train(was)
        loss, correct, count = self.sum_values(*sums)
        return {"loss": loss / count, "accuracy": correct / count}

    def rng_states(self) -> dict[str, torch.Tensor]:
        """Every worker's generator states, gathered (a collective: every worker calls it), as
        checkpoint tensors ``rng.rank{r}.torch`` (and ``.cuda``)."""
        import torch.distributed as dist

        mine = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            mine["cuda"] = torch.cuda.get_rng_state()
        gathered: list[Any] = [None] * self.world
        dist.all_gather_object(gathered, mine)
        return {f"rng.rank{r}.{k}": v for r, states in enumerate(gathered) for k, v in states.items()}

    def restore_rng(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        """This worker's generator states from a checkpoint written by as many workers (on another
        number of workers each keeps its seeded stream, and dropout draws differ from then on)."""
        if meta.get("workers") != self.world:
            return
        own = tensors.get(f"rng.rank{self.rank}.torch")
        if own is not None:
            torch.set_rng_state(own)
        cuda = tensors.get(f"rng.rank{self.rank}.cuda")
        if cuda is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state(cuda)

    def sum_grads(self, params: list[nn.Parameter]) -> None:
        """Sum every parameter's gradient over the workers (a missing gradient counts as zero)."""
        import torch.distributed as dist

        if self.sharded:  # FSDP has reduced the sharded ones in backward: the replicated rest (adapters)
            from autokd.train.fsdp import is_sharded

            params = [p for p in params if not is_sharded(p)]
            if not params:
                return
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        flat = torch.cat([p.grad.reshape(-1) for p in params])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        at = 0
        for p in params:
            n = p.grad.numel()
            p.grad.copy_(flat[at:at + n].view_as(p.grad))
            at += n

    def sum_values(self, *values: float) -> list[float]:
        """Each value summed over the workers (float64)."""
        import torch.distributed as dist

        t = torch.tensor(values, dtype=torch.float64)
        if dist.get_backend() == "nccl":
            t = t.cuda()
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return [float(v) for v in t.cpu()]


FAILURE_PREFIX = "worker_failure."  # + rank + .json, beside the checkpoint: why a worker stopped


MEMORY_NAME = "workers.json"  # beside the checkpoint: each worker's peak memory and parameter bytes


def _write_memory(shard: Shard, model: nn.Module, checkpoint_dir: Path) -> None:
    """Every worker's peak resident memory (``ru_maxrss``, the whole process: Python, torch, Ray,
    its data) and the bytes of the parameters it holds (its shards under fsdp), gathered and written
    by rank 0 as :data:`MEMORY_NAME` (what ``benchmarks/fsdp_memory.py`` reads)."""
    import resource

    import torch.distributed as dist

    from autokd.utils.io import atomic_write_json

    local = [(p.to_local() if hasattr(p, "to_local") else p) for p in model.parameters()]
    mine = {"rank": shard.rank, "strategy": shard.strategy,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "param_mib": sum(t.numel() * t.element_size() for t in local) / 2**20}
    gathered: list[Any] = [None] * shard.world
    dist.all_gather_object(gathered, mine)
    if shard.main:
        atomic_write_json(checkpoint_dir / MEMORY_NAME, gathered)


def _worker_loop(config: dict[str, Any]) -> None:
    """One Ray Train worker: the trainer on this worker's shard (rank 0 writes the checkpoints)."""
    import ray.train
    import ray.train.torch

    from autokd.train.trainer import train
    from autokd.train.device import seed_everything

    ctx = ray.train.get_context()
    shard = Shard(ctx.get_world_rank(), ctx.get_world_size(), config["strategy"])
    torch.set_num_threads(config["threads"])
    device = ray.train.torch.get_device()
    seed_everything(config["seed"] * 1009 + shard.rank)  # this worker's dropout draws (a checkpoint's RNG wins)
    folder, store, on_epoch = Path(config["checkpoint_dir"]), None, None
    try:
        if config["storage"]:  # no shared filesystem: a folder on this node, the files through the storage
            from autokd.train.storage import RunStorage

            store = RunStorage(config["storage"], config["run"])
            folder = Path(tempfile.mkdtemp(prefix=f"autokd-{config['name']}-rank{shard.rank}-"))
            store.download(folder, ["last.safetensors", "best.safetensors"])
            if shard.main:
                def upload_epoch(_rec, _epoch):  # after each epoch's checkpoint
                    store.upload(folder, ["last.safetensors", "best.safetensors"])
                on_epoch = upload_epoch
        train(config["model"], config["train_split"], config["val_split"], config["cfg"], config["objective"],
              device=device, amp=config["amp"], checkpoint_dir=folder, run_fingerprint=config["fingerprint"],
              name=config["name"], progress=config["progress"] and shard.main, validate=config["validate"],
              shard=shard, until=config["until"], on_epoch=on_epoch)
        _write_memory(shard, config["model"], folder)
        if store is not None:
            if shard.main:
                store.upload(folder, ["workers.json"])
            import shutil

            shutil.rmtree(folder, ignore_errors=True)
    except BaseException as exc:  # noqa: BLE001  one line and the record, not a worker traceback
        from autokd.train.trainer import NonFiniteLossError
        from autokd.utils.io import atomic_write_json

        record = {"rank": shard.rank, "type": type(exc).__name__, "message": str(exc).strip()[:2000]}
        if isinstance(exc, NonFiniteLossError):
            record["non_finite"] = {"epoch": exc.epoch, "step": exc.step, "value": str(exc.value), "parts": exc.parts}
        failure = f"{FAILURE_PREFIX}{shard.rank}.json"
        atomic_write_json(folder / failure, record)
        if store is not None:
            store.upload(folder, [failure])
        print(f"[{config['name']}] worker {shard.rank} stopped: {record['type']}: "
              f"{record['message'].splitlines()[0] if record['message'] else ''}", flush=True)
        os._exit(1)


def _init_ray(cpus: int) -> None:
    """Start Ray here (or join ``AUTOKD_RAY_ADDRESS``) in the search's environment, dashboard off;
    actors' output reaches this terminal (rank 0's progress lines)."""
    import ray

    from autokd.utils.ray_env import configure_environment, short_temp_dir

    env = configure_environment()
    if ray.is_initialized():
        return
    common = dict(include_dashboard=False, log_to_driver=True, logging_level="WARNING")
    address = os.environ.get("AUTOKD_RAY_ADDRESS")
    if address:
        ray.init(address=address, runtime_env={"env_vars": env}, **common)
    else:
        ray.init(num_cpus=cpus, _temp_dir=short_temp_dir(), **common)


def fit_on_workers(model: nn.Module, train_split, val_split, cfg, objective: nn.Module, *, runtime,
                   amp, checkpoint_dir: str | Path, run_fingerprint: str, name: str, progress: bool,
                   validate=None, until: int | None = None, threads: int | None = None) -> None:
    """Train on ``runtime.workers`` Ray Train workers until ``checkpoint_dir`` holds the run's
    final checkpoint (see the module doc); the caller restores it with :func:`~autokd.train.train`.
    ``until``: stop after that many epochs (:func:`~autokd.train.train`'s ``until``); ``threads``:
    each worker's torch threads (default: its CPUs, rounded down, at least 1)."""
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    res = runtime.resources_per_worker
    use_gpu = res.gpu > 0
    _init_ray(max(os.cpu_count() or 1, int(runtime.workers * res.cpu)))
    config = {"model": model.cpu(), "objective": objective.cpu(), "train_split": train_split, "val_split": val_split,
              "cfg": cfg, "amp": amp, "checkpoint_dir": str(Path(checkpoint_dir).resolve()),
              "fingerprint": run_fingerprint, "name": name, "progress": progress, "validate": validate,
              "threads": threads or max(1, int(res.cpu)), "seed": cfg.seed, "until": until,
              "strategy": getattr(runtime, "strategy", "ddp"), "storage": getattr(runtime, "storage", None),
              "run": f"{name}-{run_fingerprint}"}
    resources = {"CPU": res.cpu, **({"GPU": res.gpu} if use_gpu else {})}
    Path(checkpoint_dir).mkdir(parents=True, exist_ok=True)
    for old in Path(checkpoint_dir).glob(f"{FAILURE_PREFIX}*.json"):
        old.unlink()
    store = None
    if config["storage"]:  # the workers' checkpoints travel through runtime.storage (autokd.train.storage)
        from autokd.train.storage import RunStorage

        store = RunStorage(config["storage"], config["run"])
        store.clear_failures()
        store.upload(Path(checkpoint_dir), ["last.safetensors", "best.safetensors"], missing_only=True)
    with tempfile.TemporaryDirectory(prefix="autokd-train-") as storage:
        trainer = TorchTrainer(
            _worker_loop, train_loop_config=config,
            torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
            scaling_config=ScalingConfig(num_workers=runtime.workers, use_gpu=use_gpu, resources_per_worker=resources),
            run_config=RunConfig(name=f"autokd-{name}", storage_path=storage, failure_config=FailureConfig(max_failures=0)),
        )
        try:
            trainer.fit()
        except Exception:  # ray.train.TrainingFailedError and its kin: say what, keep the checkpoint
            if store is not None:
                store.download(Path(checkpoint_dir))
            raise_worker_failure(Path(checkpoint_dir), name, runtime.workers)
        if store is not None:
            store.download(Path(checkpoint_dir))


def raise_worker_failure(checkpoint_dir: Path, name: str, workers: int) -> NoReturn:
    """The error of a failed data-parallel run: a worker's non-finite loss as the trainer's own
    :class:`~autokd.train.trainer.NonFiniteLossError` (a search marks that trial failed), anything
    else (a worker killed, a peer's broken connection) as :class:`WorkersFailedError`."""
    import json

    from autokd.train.trainer import NonFiniteLossError

    records = []
    for f in sorted(checkpoint_dir.glob(f"{FAILURE_PREFIX}*.json")):
        try:
            records.append(json.loads(f.read_text()))
        except (OSError, ValueError):
            continue
    for r in records:
        if "non_finite" in r:
            nf = r["non_finite"]
            raise NonFiniteLossError(int(nf["epoch"]), int(nf["step"]), float(nf["value"]), nf.get("parts") or {})
    what = "; ".join(f"worker {r['rank']}: {r['type']}: {(r['message'].splitlines() or [''])[0][:200]}"
                     for r in records) or "a worker died without a message (killed, or out of memory)"
    raise WorkersFailedError(f"{name}: training on {workers} workers failed ({what}); its last checkpoint is kept "
                             f"in {checkpoint_dir}: run the same command again to resume")
