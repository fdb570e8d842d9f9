"""Data-parallel training (``runtime.workers``, :mod:`autokd.train.distributed`).

Fast tests run the one trainer as 2 real gloo ranks (``torch.multiprocessing``, no Ray) in
float64, where the only difference from one process at the same global batch is the order of
floating-point addition (a global batch's loss summed as two partial sums): weights and training
losses agree to 1e-12 (validation, in float32 as always, to 1e-6). The slow tests run whole pipeline stages on 2 Ray Train workers in float32 and compare
with the one-process run.
"""

from __future__ import annotations

import copy
import json
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from autokd.data.prepare import Split
from autokd.models.decoder import DecoderLM, DecoderParams
from autokd.models.mlp import MLP, MLPParams
from autokd.spec.pipeline import TrainSpec
from autokd.train.distributed import Shard
from autokd.train.lm_objective import LMDistillObjective
from autokd.train.trainer import CrossEntropyObjective, train
from lm_support import TINY_LM

CPU = torch.device("cpu")


def test_shards_cover_a_batch_once_in_order():
    for n in (0, 1, 5, 64, 65):
        for world in (1, 2, 3):
            parts = [Shard(r, world).rows(n) for r in range(world)]
            rows = [i for p in parts for i in range(n)[p]]
            assert rows == list(range(n))
            sizes = [p.stop - p.start for p in parts]
            assert max(sizes) - min(sizes) <= 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _classifier_case():
    torch.manual_seed(0)
    x = torch.randn(75, 10, dtype=torch.float64)
    y = torch.randint(0, 4, (75,))
    model = MLP(10, 4, MLPParams(hidden=[16])).double()
    split = Split(x, y, torch.arange(75))
    val = Split(x[:20], y[:20], torch.arange(20))
    cfg = TrainSpec(epochs=3, batch_size=16, accumulate=2, lr=0.01, seed=3)  # 5 steps an epoch, the last short
    return model, split, val, cfg, CrossEntropyObjective()


def _lm_case():
    torch.manual_seed(0)
    vocab, context = 40, 12
    x = torch.randint(0, vocab, (30, context))
    y = torch.roll(x, -1, dims=1)
    for i in range(30):  # completion-only targets of unequal length (chat data)
        y[i, : i % 7] = -100
    teacher = DecoderLM(vocab, context, DecoderParams(layers=1, width=16, heads=2)).double().eval()
    model = DecoderLM(vocab, context, DecoderParams(layers=1, width=8, heads=2)).double()
    split = Split(x, y, torch.arange(30))
    val = Split(x[:8], y[:8], torch.arange(8))
    cfg = TrainSpec(epochs=2, batch_size=8, accumulate=2, lr=3e-3, seed=1)
    return model, split, val, cfg, LMDistillObjective("fkl", {}, 0.5, teacher=teacher)


def _lm_sharded_case():
    """The LM case for fsdp: 2 blocks (each its own FSDP unit), the head tied to the embedding,
    a 2-block live teacher (sharded too), the gradient clipped (the norm over both workers' shards),
    3 epochs of 25 rows in batches of 8: the last batch's one row leaves rank 1 an empty slice, which
    joins rank 0's forward and backward at weight zero."""
    model, split, val, _, objective = _lm_case()
    split = Split(split.x[:25], split.y[:25], split.index[:25])
    torch.manual_seed(0)
    teacher = DecoderLM(40, 12, DecoderParams(layers=2, width=16, heads=2)).double().eval()
    model = DecoderLM(40, 12, DecoderParams(layers=2, width=8, heads=2, tied_embeddings=True)).double()
    cfg = TrainSpec(epochs=3, batch_size=8, accumulate=2, lr=3e-3, seed=1, grad_clip=0.05)
    return model, split, val, cfg, LMDistillObjective("fkl", {}, 0.5, teacher=teacher)


CASES = {"classifier": _classifier_case, "lm": _lm_case, "lm_sharded": _lm_sharded_case}


def _rank(rank: int, world: int, port: int, case: str, out: str, strategy: str) -> None:
    from torch.distributed.tensor import DTensor

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        torch.set_default_dtype(torch.float64)
        model, split, val, cfg, objective = CASES[case]()
        shard = Shard(rank, world, strategy)
        kw = dict(device=CPU, progress=False, shard=shard, checkpoint_dir=out, run_fingerprint="fp")
        if strategy == "fsdp":  # an epoch, then the rest resumed from its checkpoint (each worker its slices)
            train(model, split, val, cfg, objective, until=1, **kw)
            model, split, val, cfg, objective = CASES[case]()
        res = train(model, split, val, cfg, objective, **kw)
        if strategy == "fsdp":
            assert res.resumed_from == 1
            assert isinstance(model.blocks[0].ln1.weight, DTensor)  # sharded, not replicated
        state = {k: (v.full_tensor() if isinstance(v, DTensor) else v) for k, v in model.state_dict().items()}
        if rank == 0:
            torch.save({"state": state, "history": res.history}, Path(out) / "rank0.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("case,strategy", [("classifier", "ddp"), ("lm", "ddp"), ("lm_sharded", "fsdp")])
def test_two_ranks_equal_one_process_at_the_same_global_batch(case, strategy, tmp_path):
    """2 gloo ranks (ddp: whole copies; fsdp: FSDP2 shards of the student and the live teacher)
    train the float64 weights of one process at the same global batch to 1e-12: only the order of
    the summed float64 gradient parts differs."""
    torch.set_default_dtype(torch.float64)
    try:
        model, split, val, cfg, objective = CASES[case]()
        one = train(model, split, val, cfg, objective, device=CPU, progress=False)
    finally:
        torch.set_default_dtype(torch.float32)
    mp.spawn(_rank, args=(2, _free_port(), case, str(tmp_path), strategy), nprocs=2, join=True)
    two = torch.load(tmp_path / "rank0.pt", weights_only=True)
    for k, v in model.state_dict().items():
        assert torch.allclose(two["state"][k], v, rtol=0, atol=1e-12), k
    for a, b in zip(one.history, two["history"]):
        assert a.keys() == b.keys()
        for k in a:
            # validation casts logits to float32 (as every run does), and 2 workers add its sums in another order
            tol = 1e-6 if k.startswith("val_") else 1e-12
            assert b[k] == pytest.approx(a[k], rel=tol, abs=tol), k
    # rank 0 wrote the checkpoint a single process resumes from: nothing left to run, the same weights
    torch.set_default_dtype(torch.float64)
    try:
        again = CASES[case]()
        res = train(again[0], again[1], again[2], again[3], again[4], device=CPU, progress=False,
                    checkpoint_dir=tmp_path, run_fingerprint="fp")
    finally:
        torch.set_default_dtype(torch.float32)
    assert res.epochs_run == 0 and res.resumed_from == cfg.epochs
    assert all(torch.equal(again[0].state_dict()[k], two["state"][k]) for k in two["state"])


# ----------------------------------------------------------------------------- Ray Train, slow


@pytest.mark.slow
def test_classifier_stages_on_two_ray_workers(tmp_path, tiny_spec_text):
    """``runtime.workers: 2``: teacher, labels-only baseline and distilled student (its cached
    teacher logits read by each worker's row indices) trained on 2 Ray Train workers agree with
    the one-process stages to float32 rounding (MLPs: no BatchNorm, whose statistics are per
    worker); history, manifest and DVCLive logs are written as in one process. The workers keep
    their checkpoints in folders of their own and exchange them through ``runtime.storage`` (a
    ``file://`` URI: what a node without the shared filesystem does); the driver gets them back."""
    import yaml

    from autokd.models.artifact import load_model
    from autokd.stages.task import load_task_spec

    base = yaml.safe_load(tiny_spec_text)
    base["teacher"]["model"] = {"name": "mlp", "params": {"hidden": [32]}}
    store = tmp_path / "store"
    roots = {}
    for workers in (1, 2):
        doc = copy.deepcopy(base)
        doc["runtime"].update(workers=workers)
        if workers == 2:
            doc["runtime"]["storage"] = f"file://{store}"
        path = tmp_path / f"w{workers}.yaml"
        path.write_text(yaml.safe_dump(doc))
        task, _ = load_task_spec(path)
        roots[workers] = tmp_path / f"root{workers}"
        for stage in ("prepare", "train_teacher", "train_baseline", "distill"):
            task.run_stage(stage, path, roots[workers], progress=False)
    for role in ("teacher", "baseline", "student"):
        one = load_model(roots[1] / "artifacts" / role / "model.safetensors").state_dict()
        two = load_model(roots[2] / "artifacts" / role / "model.safetensors").state_dict()
        diff = max(float((one[k] - two[k]).abs().max()) for k in one)
        assert diff < 1e-5, (role, diff)
        h1 = json.loads((roots[1] / "artifacts" / role / "history.json").read_text())
        h2 = json.loads((roots[2] / "artifacts" / role / "history.json").read_text())
        assert [r["epoch"] for r in h1] == [r["epoch"] for r in h2]
        assert [r["train_loss"] for r in h2] == pytest.approx([r["train_loss"] for r in h1], rel=1e-5)
        assert (roots[2] / "dvclive" / role).is_dir()
    # each stage's run went through the storage: the final checkpoint and the workers' memory record
    runs = sorted(p.name for p in store.iterdir())
    assert [r.split("-")[0] for r in runs] == ["baseline", "student", "teacher"], runs
    for run in runs:
        role = run.split("-")[0]
        kept = store / run / "last.safetensors"
        assert kept.read_bytes() == (roots[2] / "checkpoints" / role / "last.safetensors").read_bytes()
        assert json.loads((store / run / "workers.json").read_text())[1]["rank"] == 1



def _tiny_lm_workers() -> dict:
    """The tiny LM pipeline with a live teacher (token KD + hidden-state transfer) and accumulation 2."""
    doc = copy.deepcopy(TINY_LM)
    doc["student"]["train"]["accumulate"] = 2
    doc["distill"]["representation"] = {"method": "hidden_mse"}
    return doc


@pytest.mark.slow
def test_lm_stages_on_two_ray_workers(tmp_path):
    """The LM teacher, labels-only baseline and distilled student (live teacher: token KD +
    hidden-state transfer, accumulation 2) on 2 Ray Train workers with fsdp (the student and the
    live teacher sharded) agree with one process. (ddp's arithmetic on a decoder is pinned in float64
    by the 2-rank test above, and its Ray plumbing, the same but for the strategy, by the classifier
    stages and the killed-worker test: one multi-worker LM run here keeps the slow suite's time.)"""
    import yaml

    from autokd.models.artifact import load_model
    from autokd.stages.task import load_task_spec

    roots = {}
    for workers, strategy in ((1, "ddp"), (2, "fsdp")):
        doc = _tiny_lm_workers()
        doc["runtime"].update(workers=workers, strategy=strategy)
        path = tmp_path / f"lm{workers}{strategy}.yaml"
        path.write_text(yaml.safe_dump(doc))
        task, _ = load_task_spec(path)
        roots[workers, strategy] = tmp_path / f"root{workers}{strategy}"
        for stage in ("prepare", "train_teacher", "cache_teacher", "train_baseline", "distill"):
            task.run_stage(stage, path, roots[workers, strategy], progress=False)
    for role in ("teacher", "baseline", "student"):
        one = load_model(roots[1, "ddp"] / "artifacts" / role / "model.safetensors").state_dict()
        h1 = json.loads((roots[1, "ddp"] / "artifacts" / role / "history.json").read_text())
        for key in ((2, "fsdp"),):
            two = load_model(roots[key] / "artifacts" / role / "model.safetensors").state_dict()
            assert _max_diff_but_key_bias(one, two) < 1e-4, (role, key)
            h2 = json.loads((roots[key] / "artifacts" / role / "history.json").read_text())
            assert [r["val_loss"] for r in h2] == pytest.approx([r["val_loss"] for r in h1], rel=1e-6)
            assert [r["train_loss"] for r in h2] == pytest.approx([r["train_loss"] for r in h1], rel=1e-6)


def test_fsdp_needs_workers_and_no_fp16(tmp_path, tiny_spec_text):
    """``runtime.strategy: fsdp`` on one worker, or with fp16, is a spec error naming the file and
    the key; a ddp spec dumps without the key (manifests keep their bytes)."""
    import yaml

    from autokd.spec.errors import SpecError
    from autokd.spec.pipeline import RuntimeSpec
    from autokd.stages.task import load_task_spec

    base = yaml.safe_load(tiny_spec_text)
    for runtime, says in (({"strategy": "fsdp"}, "runtime.workers is 1"),
                          ({"strategy": "fsdp", "workers": 2, "device": "cuda", "precision": "fp16",
                            "resources_per_worker": {"gpu": 1}}, "use precision bf16")):
        doc = copy.deepcopy(base)
        doc["runtime"] = runtime
        path = tmp_path / "bad.yaml"
        path.write_text(yaml.safe_dump(doc))
        with pytest.raises(SpecError) as err:
            load_task_spec(path)
        text = str(err.value)
        assert "bad.yaml" in text and "runtime" in text and says in text, text
    assert "strategy" not in RuntimeSpec(workers=2).model_dump()
    assert RuntimeSpec(workers=2, strategy="fsdp").model_dump()["strategy"] == "fsdp"


def _max_diff_but_key_bias(one: dict, two: dict) -> float:
    """Largest weight difference, leaving out the attention keys' bias. Its true gradient is exactly
    zero (a key bias adds the same q·b to every score of a query, which softmax ignores), so what
    each run's AdamW sees there is float32 rounding noise, normalised into steps of up to the
    learning rate: the two runs move it differently (7.5e-4 measured) while every other weight
    agrees to ~1e-6 and the losses to 1e-7."""
    worst = 0.0
    for k, a in one.items():
        b = two[k]
        if k.endswith("attn.qkv.bias"):
            w = a.shape[0] // 3
            a, b = torch.cat([a[:w], a[2 * w:]]), torch.cat([b[:w], b[2 * w:]])
        worst = max(worst, float((a - b).abs().max()))
    return worst


def _descendants(pid: int) -> dict[int, str]:
    """Every live descendant process of ``pid`` and its command line (Linux ``/proc``)."""
    parent, cmd = {}, {}
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            parent[int(p.name)] = int((p / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmd[int(p.name)] = (p / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError, ValueError):
            continue
    out, frontier = {}, [pid]
    while frontier:
        here = frontier.pop()
        for child, par in parent.items():
            if par == here and child not in out:
                out[child] = cmd.get(child, "")
                frontier.append(child)
    return out


@pytest.mark.slow
def test_a_killed_worker_resumes_from_the_last_checkpoint(tmp_path, tiny_spec_text):
    """kill -9 of one Ray Train worker mid-run: the stage exits 1 saying the checkpoint is kept; the
    same command again resumes from it and ends with exactly the weights of an uninterrupted run
    (with dropout, so each worker's generator must come back as it was)."""
    import signal
    import subprocess
    import sys
    import time

    import yaml

    from autokd.train.checkpoint import CKPT_NAME, load_checkpoint

    doc = yaml.safe_load(tiny_spec_text)
    doc["data"]["max_samples"] = 1797
    # dropout: the resumed workers must draw what they would have (each worker's generator is checkpointed)
    doc["teacher"]["model"] = {"name": "mlp", "params": {"hidden": [128, 128], "dropout": 0.2}}
    doc["teacher"]["train"].update(epochs=8, batch_size=32)
    doc["runtime"]["workers"] = 2
    path = tmp_path / "w2.yaml"
    path.write_text(yaml.safe_dump(doc))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}

    def stage(name: str, root: Path, **kw):
        return subprocess.Popen([sys.executable, "-m", "autokd", "stage", name, str(path), "--root", str(root)],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, **kw)

    clean, killed = tmp_path / "clean", tmp_path / "killed"
    for root in (clean, killed):
        assert stage("prepare", root).wait() == 0
    assert stage("train_teacher", clean).wait() == 0

    proc = stage("train_teacher", killed)
    ckpt = killed / "checkpoints" / "teacher" / CKPT_NAME
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if ckpt.exists():
            try:
                epoch = int(load_checkpoint(ckpt)[1]["epoch"])
            except Exception:  # being replaced this instant
                epoch = -1
            if epoch >= 1:
                break
        time.sleep(0.05)
    workers = [pid for pid, cmd in _descendants(proc.pid).items() if cmd.startswith("ray::RayTrainWorker")]
    assert proc.poll() is None and workers, "the run ended before a worker could be killed"
    os.kill(workers[-1], signal.SIGKILL)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 1, out
    ours = [ln for ln in out.splitlines() if not ln.startswith("(")]  # Ray's actors log under "(Name pid=…)"
    # our one line (Ray's controller may print the start of one of its own lines just before it, unended)
    assert "error: teacher: training on 2 workers failed" in out, out
    said = out[out.index("error: teacher: training on 2 workers failed"):].splitlines()[0]
    assert "run the same command again to resume" in said, out
    assert not any("Traceback" in ln for ln in ours), out
    kept = int(load_checkpoint(ckpt)[1]["epoch"])
    assert 1 <= kept < 7

    again = stage("train_teacher", killed)
    out, _ = again.communicate(timeout=600)
    assert again.returncode == 0, out
    assert "resuming from checkpoint after epoch" in out
    from autokd.models.artifact import load_model

    a = load_model(clean / "artifacts" / "teacher" / "model.safetensors").state_dict()
    b = load_model(killed / "artifacts" / "teacher" / "model.safetensors").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert (clean / "artifacts" / "teacher" / "history.json").read_bytes() == \
        (killed / "artifacts" / "teacher" / "history.json").read_bytes()


def test_a_workers_failure_record_becomes_the_drivers_error(tmp_path):
    """A worker's non-finite loss comes back as the trainer's NonFiniteLossError (a search marks that
    trial failed, the CLI exits 1 naming epoch and step); anything else as WorkersFailedError naming
    the kept checkpoint; no record at all (a killed worker) says so."""
    from autokd.train.distributed import FAILURE_PREFIX, WorkersFailedError, raise_worker_failure
    from autokd.train.trainer import NonFiniteLossError
    from autokd.utils.io import atomic_write_json

    with pytest.raises(WorkersFailedError, match="died without a message.*run the same command again"):
        raise_worker_failure(tmp_path, "teacher", 2)
    atomic_write_json(tmp_path / f"{FAILURE_PREFIX}1.json",
                      {"rank": 1, "type": "RuntimeError", "message": "[gloo] Connection reset by peer\nmore"})
    with pytest.raises(WorkersFailedError, match=r"worker 1: RuntimeError: \[gloo\] Connection reset by peer\)"):
        raise_worker_failure(tmp_path, "teacher", 2)
    atomic_write_json(tmp_path / f"{FAILURE_PREFIX}0.json",
                      {"rank": 0, "type": "NonFiniteLossError", "message": "non-finite loss",
                       "non_finite": {"epoch": 2, "step": 5, "value": "nan", "parts": {"ce": 1.0}}})
    with pytest.raises(NonFiniteLossError, match=r"epoch 3, step 6 \[ce=1\]") as err:
        raise_worker_failure(tmp_path, "teacher", 2)
    assert err.value.epoch == 2 and err.value.step == 5
