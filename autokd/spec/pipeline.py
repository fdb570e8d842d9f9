"""The pipeline spec: the one source of truth for every knob of ``dvc repro``.

A spec is YAML validated by these pydantic models (unknown keys are errors). Model and
method parameters are validated a second time against the registries that own them
(``autokd.models``, ``autokd.losses``) by :mod:`autokd.stages.validate`; this package
imports nothing from the rest of autokd.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_serializer, model_validator

from autokd.spec.base import Strict

PositiveInt = Annotated[int, Field(gt=0)]


class SplitSpec(Strict):
    """Fractions of a stratified train/val/test split (must sum to 1)."""

    train: float = Field(0.6, gt=0, lt=1)
    val: float = Field(0.2, ge=0, lt=1)
    test: float = Field(0.2, gt=0, lt=1)

    @model_validator(mode="after")
    def _sums_to_one(self):
        total = self.train + self.val + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"train + val + test must sum to 1, found {total:g}")
        return self


class DataSpec(Strict):
    """Where the data comes from and how it is split."""

    source: str = Field("digits", description="reader name: digits, mnist_idx, cifar10, cifar100, image_folder, csv, npz")
    path: str | None = Field(None, description="file or folder for on-disk sources (relative to the repo root)")
    options: dict[str, Any] = Field(default_factory=dict, description="reader options, e.g. label_column for csv")
    split: SplitSpec = Field(default_factory=SplitSpec)
    seed: int = Field(0, description="seed of the stratified split")
    normalize: bool = Field(True, description="standardise each channel/feature with training-split statistics")
    max_samples: PositiveInt | None = Field(None, description="keep a stratified subset of this size (quick runs)")


class AugmentSpec(Strict):
    """Train-time augmentation. When enabled, cached teacher outputs no longer match the
    inputs, so distillation runs the teacher on every augmented batch."""

    enabled: bool = False
    crop_padding: int = Field(1, ge=0, description="random shift: pad by this many pixels, then crop back")
    hflip: bool = Field(False, description="random horizontal flip (off for digits: flips change meaning)")
    noise_std: float = Field(0.0, ge=0, description="additive Gaussian noise (in normalised units)")


class TrainSpec(Strict):
    """One training loop's knobs; every model (teacher, baseline, student) has its own block."""

    optimizer: Literal["sgd", "adamw"] = "adamw"
    lr: float = Field(3e-3, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD only")
    nesterov: bool = Field(False, description="SGD only")
    weight_decay: float = Field(5e-4, ge=0)
    schedule: Literal["cosine", "step", "constant"] = "cosine"
    step_size: PositiveInt = Field(30, description="epochs between decays (schedule: step)")
    gamma: float = Field(0.1, gt=0, le=1, description="decay factor (schedule: step)")
    warmup_epochs: int = Field(0, ge=0, description="linear learning-rate warm-up")
    epochs: PositiveInt = 40
    batch_size: PositiveInt = 64
    accumulate: PositiveInt = Field(
        1, description="micro-batches (of batch_size) per optimizer step; each one's loss is weighted by its share "
        "of the step's loss tokens (samples for a classifier), so a step equals one batch of batch_size x accumulate")
    seed: int = 0
    grad_clip: float | None = Field(None, gt=0, description="clip the gradient norm to this value")
    keep: Literal["last", "best"] = Field(
        "last", description="the weights a run ends with: the last epoch's, or those of the epoch with the lowest "
        "validation loss (early-stopping selection on the validation split)")
    patience: PositiveInt | None = Field(
        None, description="early stopping: end the run once the validation loss has not improved for this many "
        "epochs (the schedule keeps its full length; use with keep: best)")
    augment: AugmentSpec = Field(default_factory=AugmentSpec)
    schedule_unit: Literal["epoch", "step"] = Field(
        "epoch", description="epoch: the schedule and warmup_epochs per epoch; step: per optimizer step, a linear "
        "warm-up of warmup_steps then the schedule over the run's remaining steps (step_size counts steps)")
    warmup_steps: int = Field(0, ge=0, description="schedule_unit step: optimizer steps of linear warm-up")
    checkpoint_every: PositiveInt | None = Field(
        None, description="also checkpoint every n optimizer steps inside an epoch (a run resumes there, "
        "bit-identically); epochs always end with a checkpoint")

    @model_validator(mode="after")
    def _unit_knobs(self) -> "TrainSpec":
        if self.schedule_unit == "step" and self.warmup_epochs:
            raise ValueError("train.warmup_epochs is for schedule_unit 'epoch'; give warmup_steps")
        if self.schedule_unit == "epoch" and self.warmup_steps:
            raise ValueError("train.warmup_steps is for schedule_unit 'step'")
        return self

    @model_serializer(mode="wrap")
    def _dump(self, handler):
        """Knobs added after runs were cached are left out of a dump while at their defaults, so
        every manifest written before them keeps its bytes."""
        out = handler(self)
        if isinstance(out, dict):
            for key, default in LATER_TRAIN_DEFAULTS.items():
                if key in out and out[key] == default:
                    del out[key]
        return out


#: TrainSpec keys dumped only when set (``TrainSpec._dump``)
LATER_TRAIN_DEFAULTS = {"schedule_unit": "epoch", "warmup_steps": 0, "checkpoint_every": None}


class ModelSpec(Strict):
    """A model by registry name (``mlp``, ``cnn``, ``resnet_s1``) or import path
    (``my_pkg.models:MyNet``, built as ``MyNet(input_shape=…, num_classes=…, **params)``)."""

    name: str = "cnn"
    params: dict[str, Any] = Field(default_factory=dict)


class RoleSpec(Strict):
    """A model and how to train it."""

    model: ModelSpec = Field(default_factory=ModelSpec)
    train: TrainSpec = Field(default_factory=TrainSpec)


class FeaturePair(Strict):
    """A student feature distilled toward a teacher feature (adapter added if shapes differ).

    A feature is named by an alias the model returns from ``forward(x, return_features=True)``
    (built-in families: ``stem``, ``stage1`` … ``pool``; ``hidden1`` … ``penultimate``) or by a
    dotted module path from ``model.named_modules()`` (``layers.1``, ``blocks.3``: that module's
    output, the first tensor if it returns a tuple); an alias wins where a name is both. Names
    are checked against the built models when the objective is built.
    """

    student: str = Field(description="student feature: an alias (pool, stage2) or a module path (layers.1)")
    teacher: str = Field(description="teacher feature: an alias (pool, stage2) or a module path (blocks.3)")
    weight: float = Field(1.0, ge=0, description="weight of this pair in the distillation term")


class DistillSpec(Strict):
    """The distillation objective L = (1 - alpha) * CE + alpha * D, D the method's term.

    For ``kd``: D = T^2 * KL(softmax(z_t/T) || softmax(z_s/T)) (Hinton et al.; survey eq. 1).
    The default, ``auto``, trains a short list of recipes and keeps the best by validation
    accuracy (``autokd.stages.auto``): no single recipe matched labels-only training on every
    dataset and seed of ``benchmarks/defaults_study.py``.
    """

    method: str = Field("auto", description="a name from `autokd methods`, or auto: the best of "
                        "distill.params.candidates (default: lskd, labels only) by validation accuracy")
    temperature: float | None = Field(
        None, gt=0,
        description="T: softens both distributions; absent = the method's own default (kd 4, lskd 2); "
        "refused for methods without a temperature and for auto",
    )
    alpha: float = Field(0.5, ge=0, le=1, description="lambda: weight of the distillation term "
                         "(auto: of each candidate that sets none)")
    params: dict[str, Any] = Field(default_factory=dict, description="the method's own parameters")
    features: list[FeaturePair] = Field(
        default_factory=list, description="feature pairs for feature/relation methods (default: pool -> pool)"
    )
    teacher_outputs: Literal["auto", "cache", "live"] = Field(
        "auto",
        description="auto: cached teacher logits unless augmentation or a feature method needs the teacher live",
    )


class EvaluateSpec(Strict):
    """Evaluation knobs (test split)."""

    ece_bins: PositiveInt = 15
    latency_runs: PositiveInt = Field(100, description="timed batch-1 forward passes (median reported)")
    latency_warmup: int = Field(10, ge=0)
    latency_threads: PositiveInt = Field(1, description="torch threads while timing latency/throughput")
    throughput_batch: PositiveInt = 256


class WorkerResources(Strict):
    """What each data-parallel worker reserves on the Ray cluster."""

    cpu: float = Field(1.0, gt=0, description="CPUs per worker (also its torch threads, rounded down, at least 1)")
    gpu: float = Field(0.0, ge=0, description="GPUs per worker (> 0: NCCL on CUDA; 0: gloo on CPU)")


class RuntimeSpec(Strict):
    """Where training runs. ``device: auto`` picks CUDA when present (with AMP). ``workers: N``
    (N ≥ 2) trains each role on N data-parallel Ray Train workers (:mod:`autokd.train.distributed`)."""

    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?|mps)$")
    amp: Literal["auto", "on", "off"] = Field("auto", description="mixed precision: auto = on for CUDA")
    num_threads: PositiveInt | None = Field(None, description="torch CPU threads (None: torch default)")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="training autocast: auto = amp's choice (fp16 on CUDA, fp32 on CPU); bf16 on CPU "
        "and CUDA; fp16 on CUDA only (with a loss scaler); fp32 none. Weights and optimizer state stay fp32")
    teacher_precision: Literal["same", "fp32", "bf16", "fp16"] = Field(
        "same", description="the teacher's weights when it runs during distillation (live, or writing the LM "
        "top-k cache): same = fp32 weights under the run's autocast; bf16/fp16 halve its memory")
    workers: int = Field(1, ge=0, description="data-parallel Ray Train workers per training stage (0 or 1: this "
                         "process, as before; N >= 2: N workers, each on its slice of every batch)")
    resources_per_worker: WorkerResources = Field(default_factory=WorkerResources)
    strategy: Literal["ddp", "fsdp"] = Field(
        "ddp", description="with workers >= 2: ddp = every worker holds the whole model; fsdp = parameters, "
        "gradients and optimizer state sharded over the workers (FSDP2), the live teacher too")
    storage: str | None = Field(
        None, description="with workers >= 2 on nodes that share no filesystem: a folder every node sees, or a "
        "pyarrow filesystem URI (s3://bucket/prefix, gs://..., file:///...), through which the workers' "
        "checkpoints travel (autokd.train.storage); None: the stage's checkpoint folder, seen by every node")

    @model_validator(mode="after")
    def _one_precision_switch(self) -> "RuntimeSpec":
        if self.precision != "auto" and self.amp != "auto":
            raise ValueError(f"runtime.precision ({self.precision}) and runtime.amp ({self.amp}) both set: "
                             "give precision only (amp is its older on/off form)")
        if self.device == "cpu" and "fp16" in (self.precision, self.teacher_precision):
            raise ValueError("fp16 needs CUDA (no loss scaler on a CPU): use bf16 or fp32 with runtime.device cpu")
        if self.strategy == "fsdp" and self.workers < 2:
            raise ValueError(f"runtime.strategy fsdp shards the model over workers, but runtime.workers is "
                             f"{self.workers}: set workers >= 2, or strategy ddp")
        if self.strategy == "fsdp" and "fp16" in (self.precision, self.teacher_precision):
            raise ValueError("runtime.strategy fsdp with fp16: the loss scaler does not unscale sharded "
                             "gradients here; use precision bf16")
        if self.workers > 1:
            gpu = self.resources_per_worker.gpu
            if self.device.startswith("cuda") and gpu == 0:
                raise ValueError(f"runtime.device {self.device} with {self.workers} workers: give each a GPU "
                                 "(runtime.resources_per_worker.gpu: 1), or use device cpu")
            if self.device in ("cpu", "mps") and gpu > 0:
                raise ValueError(f"runtime.resources_per_worker.gpu is {gpu:g} but runtime.device is {self.device}: "
                                 "workers with GPUs train on CUDA (device auto or cuda)")
        return self

    @model_serializer(mode="wrap")
    def _dump(self, handler):
        """The worker knobs are left out of a dump at their defaults (manifests keep their bytes)."""
        out = handler(self)
        if isinstance(out, dict):
            if out.get("workers") == 1:
                del out["workers"]
            if out.get("resources_per_worker") == {"cpu": 1.0, "gpu": 0.0}:
                del out["resources_per_worker"]
            if out.get("strategy") == "ddp":
                del out["strategy"]
            if "storage" in out and out["storage"] is None:
                del out["storage"]
        return out


#: runtime keys that say where a run trains, not what it learns: left out of checkpoint fingerprints,
#: so a run resumes on any number of workers and either strategy (checkpoints hold full tensors)
PLACEMENT_KEYS = ("workers", "resources_per_worker", "strategy", "storage")


class PipelineSpec(Strict):
    """A whole declarative KD pipeline."""

    task: Literal["classify"] = Field("classify", description="the pipeline task (autokd.stages.task)")
    name: str = "default"
    data: DataSpec = Field(default_factory=DataSpec)
    teacher: RoleSpec = Field(default_factory=RoleSpec)
    student: RoleSpec = Field(default_factory=RoleSpec)
    distill: DistillSpec = Field(default_factory=DistillSpec)
    evaluate: EvaluateSpec = Field(default_factory=EvaluateSpec)
    runtime: RuntimeSpec = Field(default_factory=RuntimeSpec)
