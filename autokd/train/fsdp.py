"""Sharded data parallelism (``runtime.strategy: fsdp``): PyTorch's FSDP2 (``fully_shard``) on the
data-parallel workers of :mod:`autokd.train.distributed`.

Each worker holds a 1/N slice of every parameter, of its gradient and of its optimizer state
(DTensors sharded on dim 0) instead of whole copies: a layer's weights are gathered for its
forward and backward and freed after (``reshard_after_forward``). What is sharded:

- every element of the model's top-level ``nn.ModuleList``s (a transformer's blocks) is its own
  unit, the rest of the model (embeddings, head, final norm) the root unit, so at most one
  block's weights are whole at a time; a model without a ``ModuleList`` is one unit;
- the live teacher of a distillation objective alike (frozen, forward only), so a teacher larger
  than one worker's memory still runs; the objective's own small modules (feature adapters, a
  learned temperature) stay replicated and their gradients are summed as in ddp.

The arithmetic is the ddp path's: each worker's loss is weighted by its slice's share of the
step's targets and the gradients are *summed* over workers (``set_gradient_divide_factor(1)``;
FSDP's default is the mean), so a step equals one process's step at the same global batch to
rounding. FSDP's forward and backward are collectives: every worker must run as many of them as
the others, so a worker whose slice of a batch is empty runs one row at weight zero, and a
validation pass pads the workers with fewer chunks (:meth:`~autokd.train.distributed.Shard.evaluate`).

Checkpoints keep one format for every strategy and worker count: full (gathered) tensors, written
by rank 0, so a run resumes on any N and either strategy, and a single process reads them as it
reads its own. Gathering is a collective (every worker calls :func:`full_state`); a resumed
worker keeps only its slice of each loaded tensor (:func:`local_state`).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

FORWARD_METHODS = ("generate",)  # called from outside forward() (on-policy sampling): the same hooks


def _dtensor():
    from torch.distributed.tensor import DTensor

    return DTensor


def is_sharded(t: Any) -> bool:
    """Whether a tensor is an FSDP shard (a DTensor)."""
    return isinstance(t, _dtensor())


def _identity(value: torch.Tensor) -> tuple:
    """Where a state-dict value's (local) data lives: tied aliases share it (``state_dict`` detaches
    each entry into a new object, so ``id`` does not tell)."""
    local = value.to_local() if is_sharded(value) else value
    if not local.numel():
        return ("empty", id(value))
    return (local.untyped_storage().data_ptr(), local.storage_offset(), tuple(local.shape),
            tuple(local.stride()), local.dtype)


def _units(model: nn.Module) -> list[nn.Module]:
    """The elements of ``model``'s outermost ``ModuleList``s (a ModuleList inside one is not searched)."""
    units: list[nn.Module] = []

    def visit(module: nn.Module) -> None:
        for child in module.children():
            if isinstance(child, nn.ModuleList):
                units.extend(m for m in child if any(True for _ in m.parameters()))
            else:
                visit(child)

    visit(model)
    return units


def shard_model(model: nn.Module, device: torch.device, world: int, *, root_reshard: bool = False) -> nn.Module:
    """``fully_shard`` ``model`` in place over ``world`` workers (its blocks, then the root), with
    gradients summed, not averaged, over the workers. ``root_reshard``: free the root unit's
    gathered weights after each forward too (a frozen teacher, whose backward never frees them)."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard, register_fsdp_forward_method

    mesh = init_device_mesh(device.type, (world,))
    for unit in _units(model):
        fully_shard(unit, mesh=mesh)
    fully_shard(model, mesh=mesh, reshard_after_forward=True if root_reshard else None)
    for module in model.modules():
        if hasattr(module, "set_gradient_divide_factor"):
            module.set_gradient_divide_factor(1.0)
            # a plain SUM reduce-scatter (float32's default here is PREMUL_SUM, which gloo lacks)
            module.set_force_sum_reduction_for_comms(True)
    for method in FORWARD_METHODS:
        if callable(getattr(model, method, None)):
            register_fsdp_forward_method(model, method)
    return model


def full_state(model: nn.Module, optimizer: torch.optim.Optimizer, keep: bool = True
               ) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
    """The model's state with tied aliases kept once and the optimizer's state dict, every shard
    gathered into its full tensor on the CPU (a collective: every worker calls it, in step, one
    tensor at a time). ``keep=False`` (the workers that do not write): each gathered tensor is
    dropped at once, so those workers never hold more than one whole tensor, and None is returned."""
    def whole(value: torch.Tensor) -> torch.Tensor | None:
        full = value.full_tensor() if is_sharded(value) else value
        return full.detach().cpu().contiguous() if keep else None

    seen: set[tuple] = set()
    tensors: dict[str, torch.Tensor] = {}
    for key, value in model.state_dict().items():
        ident = _identity(value)
        if ident in seen:  # a tied alias (the same parameter under a second name)
            continue
        seen.add(ident)
        tensors[key] = whole(value)
    sd = optimizer.state_dict()
    state = {pid: {k: (whole(v) if isinstance(v, torch.Tensor) else v) for k, v in entry.items()}
             for pid, entry in sd["state"].items()}
    return (tensors, {"state": state, "param_groups": sd["param_groups"]}) if keep else None


def _like(full: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """This worker's slice of ``full`` placed as ``ref`` is (no communication: every worker holds ``full``)."""
    from torch.distributed.tensor import distribute_tensor

    return distribute_tensor(full.to(device=ref.device, dtype=ref.dtype), ref.device_mesh, ref.placements,
                             src_data_rank=None)


def local_state(tensors: dict[str, torch.Tensor], model: nn.Module,
                optimizer: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    """A checkpoint's full tensors (``model.*``, ``optim.{pid}.*``) with each sharded parameter's,
    and its optimizer state's, replaced by this worker's slice; tied aliases filled in."""
    out = dict(tensors)
    state = model.state_dict()
    first: dict[tuple, str] = {}
    for key, value in state.items():
        name = first.setdefault(_identity(value), key)
        full = tensors.get(f"model.{name}")
        if full is not None:
            out[f"model.{key}"] = _like(full, value) if is_sharded(value) else full
    params = [p for group in optimizer.param_groups for p in group["params"]]
    for key, value in tensors.items():
        if key.startswith("optim."):
            pid = int(key.split(".", 2)[1])
            p = params[pid]
            if is_sharded(p) and tuple(value.shape) == tuple(p.shape):
                out[key] = _like(value, p)
    return out


@torch.no_grad()
def clip_grad_norm(params: list[nn.Parameter], max_norm: float) -> float:
    """Scale every gradient by ``min(1, max_norm / (‖g‖ + 1e-6))``, ``‖g‖`` the 2-norm over all of
    them (``torch.nn.utils.clip_grad_norm_``'s rule), where the sharded gradients' squares are
    summed over the workers and the replicated ones counted once."""
    import torch.distributed as dist

    grads = [p.grad for p in params if p.grad is not None]
    shards = [g.to_local() for g in grads if is_sharded(g)]
    whole = [g for g in grads if not is_sharded(g)]
    dtype = torch.float64 if any(g.dtype == torch.float64 for g in grads) else torch.float32
    device = (shards or whole)[0].device if grads else torch.device("cpu")
    sq = torch.zeros((), dtype=dtype, device=device)
    for g in shards:
        sq += g.to(dtype).pow(2).sum()
    dist.all_reduce(sq, op=dist.ReduceOp.SUM)
    for g in whole:
        sq += g.to(dtype).pow(2).sum()
    total = math.sqrt(float(sq))
    coef = min(1.0, max_norm / (total + 1e-6))
    if coef < 1.0:
        for g in shards + whole:
            g.mul_(coef)
    return total
