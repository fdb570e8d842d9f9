"""Schemas of language-model distillation: the text data (corpus, split, tokenizer, context) and the
LM pipeline (``task: lm``: teacher, student, token-level objective, representation term, evaluation)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, PositiveInt, model_serializer, model_validator

from autokd.spec.base import Strict
from autokd.spec.pipeline import ModelSpec, RoleSpec, RuntimeSpec, TrainSpec


class TokenizerSpec(Strict):
    """A byte-level BPE trained on the training split in ``prepare``, or a user's tokenizer file."""

    kind: Literal["bpe", "file"] = Field("bpe", description="bpe: train one in prepare; file: a tokenizer.json")
    vocab_size: int = Field(1024, ge=260, le=1_000_000,
                            description="BPE vocabulary size (256 byte tokens, the end-of-text token, merges)")
    path: str | None = Field(None, description="kind: file — a tokenizer.json, or a folder holding one "
                             "(e.g. a local Hugging Face model folder)")
    min_frequency: PositiveInt = Field(2, description="BPE: a pair seen fewer times is not merged")

    @model_validator(mode="after")
    def _path_for_file(self) -> "TokenizerSpec":
        if self.kind == "file" and not self.path:
            raise ValueError("tokenizer.kind 'file' needs tokenizer.path")
        if self.kind == "bpe" and self.path:
            raise ValueError("tokenizer.path is for kind 'file' (a BPE tokenizer is trained in prepare)")
        return self


class TextDataSpec(Strict):
    """Where the text comes from, how documents are split, and the window length.

    Documents are split deterministically by their position in a fixed order (files sorted by
    path, ``.jsonl`` lines in file order, the embedded corpus in ``block_chars`` blocks): document
    ``i`` goes to validation when ``i % holdout_every == holdout_every - 1``, to test when
    ``i % holdout_every == holdout_every - 2``, to training otherwise.
    """

    source: str = Field(
        "pydoc_topics", min_length=1, description="pydoc_topics: CPython's pydoc_data.topics (ships with Python); "
        "files: path; or a user's source as 'package.module:function'")
    path: str | None = Field(None, description="files: a .txt/.md/.jsonl file or a folder of them "
                             "(relative to the working directory)")
    text_field: str = Field("text", min_length=1, description=".jsonl: the field holding each document's text")
    block_chars: PositiveInt = Field(4096, description="pydoc_topics: characters per document block")
    holdout_every: int = Field(10, ge=3, description="every n-th document to validation, the one before it to test")
    context: int = Field(128, ge=2, description="tokens per training window (the model's context)")
    max_documents: PositiveInt | None = Field(None, description="keep the first n documents (quick runs)")
    tokenizer: TokenizerSpec = Field(default_factory=TokenizerSpec)
    format: Literal["text", "chat"] = Field(
        "text", description="text: documents joined into one stream and cut into windows; chat: conversations "
        "(.jsonl {prompt, completion} or {messages: [{role, content}, …]}; pydoc_topics: 'Explain the Python "
        "topic X' → the topic's text), each rendered with the chat template, one example a window unless packed")
    chat_template: str = Field(
        "auto", min_length=1, description="chat: auto (the tokenizer folder's chat template, else plain), plain "
        "(autokd's documented template, autokd.data.text.chat.PLAIN_TEMPLATE), or a .jinja file")
    loss_on: Literal["completion", "all"] = Field(
        "completion", description="chat: the tokens CE and every divergence cover: completion (the assistant's "
        "turns and the closing end-of-text) or all (the whole rendered conversation)")
    packing: bool = Field(False, description="chat: several examples per window, attention and positions kept "
                          "per example (no token attends across examples)")

    @model_validator(mode="after")
    def _path_for_files(self) -> "TextDataSpec":
        if self.source == "files" and not self.path:
            raise ValueError("data.source 'files' needs data.path")
        if self.source == "pydoc_topics" and self.path:
            raise ValueError("data.path is for source 'files'")
        if self.format == "text" and (self.packing or self.chat_template != "auto" or self.loss_on != "completion"):
            raise ValueError("data.packing, data.chat_template and data.loss_on are for data.format 'chat' (text "
                             "windows are already packed, and every token is predicted)")
        return self

    @model_serializer(mode="wrap")
    def _text_dump(self, handler):
        """A text spec dumps without the chat keys, so every manifest and lock written before chat
        data existed keeps its bytes."""
        out = handler(self)
        if self.format == "text" and isinstance(out, dict):
            for key in CHAT_KEYS:
                out.pop(key, None)
        return out


#: the keys of :class:`TextDataSpec` that only chat data uses (left out of a text spec's dump)
CHAT_KEYS = ("format", "chat_template", "loss_on", "packing")


# ----------------------------------------------------------------------------- the LM pipeline


class LMTeacherSpec(RoleSpec):
    """The teacher: a model and how to train it, or ``train: null`` for a pretrained teacher used
    as it is (a local Hugging Face folder: ``model: {name: hf_causal_lm, params: {path: …}}``):
    the ``train_teacher`` stage evaluates it and saves it, never trains it."""

    train: TrainSpec | None = Field(default_factory=TrainSpec, description="how to train it; null (or epochs: 0): "
                                    "a pretrained teacher (hf_causal_lm) used as it is (evaluated, cached, never "
                                    "trained)")

    @model_validator(mode="before")
    @classmethod
    def _zero_epochs_is_no_training(cls, data):
        """``train: {epochs: 0}`` is the other spelling of ``train: null`` (nothing else of it is read)."""
        if isinstance(data, dict) and isinstance(data.get("train"), dict) and data["train"].get("epochs") == 0:
            data = {**data, "train": None}
        return data


class StudentInitSpec(Strict):
    """The student cut out of the trained teacher (Minitron-style, :mod:`autokd.models.prune`):
    the teacher's layers ``keep_layers`` (or every ``keep_every``-th, from the first), and the
    hidden channels, attention heads and MLP neurons that matter most on ``calibration_windows``
    training windows, to the student's own shape (``student.model.params``: its ``width`` and
    ``heads`` keep whole heads, so ``width / heads`` is the teacher's head size). Both models
    are ``decoder``; distillation then starts from the teacher's weights."""

    from_: Literal["teacher"] = Field("teacher", alias="from", description="where the weights come from")
    keep_layers: list[int] | None = Field(None, description="the teacher's layers to keep (0-based, increasing)")
    keep_every: PositiveInt | None = Field(None, description="keep layers 0, k, 2k, … of the teacher")
    calibration_windows: PositiveInt = Field(16, description="training windows the importance is measured on")

    @model_validator(mode="after")
    def _one_depth_rule(self) -> "StudentInitSpec":
        if (self.keep_layers is None) == (self.keep_every is None):
            raise ValueError("student.init needs exactly one of keep_layers and keep_every")
        if self.keep_layers is not None and (not self.keep_layers or sorted(set(self.keep_layers)) != self.keep_layers
                                             or self.keep_layers[0] < 0):
            raise ValueError(f"student.init.keep_layers must be increasing layer indices ≥ 0, found {self.keep_layers}")
        return self

    def layers(self, teacher_layers: int) -> list[int]:
        """The teacher layers kept, in order."""
        return list(self.keep_layers) if self.keep_layers is not None else list(range(0, teacher_layers,
                                                                                        self.keep_every))

    @model_serializer(mode="wrap")
    def _dump(self, handler):
        out = handler(self)
        if isinstance(out, dict) and "from_" in out:
            out = {"from": out.pop("from_"), **out}
        return out


class LMStudentSpec(RoleSpec):
    """The student: a model and how to train it, optionally cut out of the teacher (``init``)."""

    init: StudentInitSpec | None = Field(None, description="start the distilled student from the teacher's "
                                         "weights (structured pruning); null: the seed's random weights")

    @model_serializer(mode="wrap")
    def _dump(self, handler):
        out = handler(self)
        if isinstance(out, dict) and out.get("init", 0) is None:
            del out["init"]  # a student without init dumps as before init existed
        return out


def _teacher_role() -> LMTeacherSpec:
    return LMTeacherSpec(model=ModelSpec(name="decoder", params={"layers": 4, "width": 256, "heads": 4}),
                         train=TrainSpec(epochs=5, batch_size=16, lr=2e-3, weight_decay=0.01, warmup_epochs=0))


def _student_role() -> LMStudentSpec:
    return LMStudentSpec(model=ModelSpec(name="decoder", params={"layers": 2, "width": 128, "heads": 4}),
                    train=TrainSpec(epochs=6, batch_size=16, lr=3e-3, weight_decay=0.01, warmup_epochs=0))


class LayerMapSpec(Strict):
    """Which student layer learns from which teacher layer (``autokd.losses.layer_map``)."""

    kind: Literal["uniform", "last", "explicit"] = "uniform"
    pairs: list[tuple[int, int]] = Field(default_factory=list, description="explicit: [[student, teacher], …], "
                                         "layers 1…L (0 = embeddings, hidden states only)")

    @model_validator(mode="after")
    def _pairs_for_explicit(self) -> "LayerMapSpec":
        if (self.kind == "explicit") != bool(self.pairs):
            raise ValueError("layer_map.pairs is given exactly when layer_map.kind is 'explicit'")
        return self


class RepresentationSpec(Strict):
    """A representation-transfer term added to the objective with ``weight``.

    ``features`` are name patterns whose ``{}`` is a block index (0-based) filled in by the
    layer map — ``block{}`` (hidden states), ``blocks.{}.attn.probs`` (attention),
    ``blocks.{}.attn.q`` / ``.k`` / ``.v`` (MiniLM relations) — or a name without ``{}`` used as
    is (``layers``: every layer stacked, for ``ckd_ltr``)."""

    method: str = Field("hidden_mse", description="hidden_mse, hidden_cos, attn_kl, minilm, ckd_wr, ckd_ltr")
    params: dict[str, Any] = Field(default_factory=dict, description="the method's own parameters")
    weight: float = Field(1.0, ge=0, description="weight of the term, beside (1 - alpha)·CE + alpha·D")
    features: list[str] = Field(default_factory=lambda: ["block{}"], min_length=1)
    layer_map: LayerMapSpec = Field(default_factory=LayerMapSpec)


class SequenceSpec(Strict):
    """Sequence-level and on-policy distillation beside the token-level term.

    * ``seqkd`` (Kim & Rush 2016): the teacher continues each training window's first
      ``prompt_tokens`` (greedy, or sampled at ``temperature``) once, in its own stage (a DVC
      output); the student's sequence term is the NLL of those continuations. The hybrid
      objective mixes the two: ``(1 − g)·D_token + g·D_seq``, ``g`` fixed (``weight``) or learned
      (``gate: learned``, g = σ(θ) trained with the student, started at ``weight``).
    * ``on_policy`` (GKD, Agarwal et al. 2024): with probability ``lmbda`` a batch's continuations
      are the student's own samples (at ``temperature``), scored token by token by the live
      teacher with the token-level divergence; other batches train as usual.
    """

    mode: Literal["seqkd", "on_policy"] = "seqkd"
    prompt_tokens: PositiveInt = Field(16, description="tokens of each window kept as the prompt")
    sampling: Literal["greedy", "sample"] = Field("greedy", description="seqkd: how the teacher continues")
    temperature: float = Field(1.0, gt=0, description="sampling temperature (seqkd 'sample', on_policy)")
    weight: float = Field(0.5, ge=0, le=1, description="seqkd: g, the sequence term's share (1 = sequence only)")
    gate: Literal["fixed", "learned"] = Field("fixed", description="seqkd: g fixed at weight, or learned")
    lmbda: float = Field(0.5, ge=0, le=1, description="on_policy: probability a batch is the student's samples")


class LMDistillSpec(Strict):
    """L = (1 − alpha)·CE + alpha·D_token (+ weight·R, a representation term)."""

    method: str = Field("fkl", description="a token-level divergence: fkl, rkl, jsd, tvd, skl, srkl, akl")
    temperature: float | None = Field(None, gt=0, description="T of both distributions; absent = the method's (1)")
    alpha: float = Field(0.5, ge=0, le=1, description="weight of the token-level distillation term")
    params: dict[str, Any] = Field(default_factory=dict, description="the method's own parameters (beta, alpha, mu)")
    teacher_outputs: Literal["cache", "live"] = Field(
        "cache", description="cache: the teacher's top-k per token, written once (a representation term runs "
        "the teacher live)")
    top_k: PositiveInt = Field(32, description="tokens kept per position in the teacher cache (≥ vocab: all)")
    representation: RepresentationSpec | None = None
    sequence: SequenceSpec | None = None

    @property
    def teacher_live(self) -> bool:
        """Whether the teacher runs on every training batch (``teacher_outputs: live``, or a
        representation term, which needs its features): the one rule every caller asks."""
        return self.teacher_outputs == "live" or self.representation is not None

    @property
    def seqkd(self) -> bool:
        """Sequence-level KD: the teacher's continuations are made once by ``cache_teacher``."""
        return self.sequence is not None and self.sequence.mode == "seqkd"

    @property
    def on_policy(self) -> bool:
        """On-policy KD: student samples scored by the live teacher."""
        return self.sequence is not None and self.sequence.mode == "on_policy"

    @property
    def reads_cache(self) -> bool:
        """Whether distillation reads ``cache_teacher``'s outputs (the top-k cache or seqKD continuations)."""
        return not self.teacher_live or self.seqkd


class LMEvaluateSpec(Strict):
    """Evaluation knobs (test split)."""

    prompts: PositiveInt = Field(50, description="prompts for generation metrics (ROUGE-L, teacher NLL of samples)")
    prompt_tokens: PositiveInt = 16
    new_tokens: PositiveInt = 32
    speed: bool = Field(True, description="measure generation tokens/s at batch 1 and 32")


class LMPipelineSpec(Strict):
    """A language-model distillation pipeline (``task: lm``)."""

    task: Literal["lm"] = "lm"
    name: str = "lm"
    data: TextDataSpec = Field(default_factory=TextDataSpec)
    teacher: LMTeacherSpec = Field(default_factory=_teacher_role)
    student: LMStudentSpec = Field(default_factory=_student_role)
    distill: LMDistillSpec = Field(default_factory=LMDistillSpec)
    evaluate: LMEvaluateSpec = Field(default_factory=LMEvaluateSpec)
    runtime: RuntimeSpec = Field(default_factory=RuntimeSpec)

    @model_validator(mode="after")
    def _packing_without_prompts(self) -> "LMPipelineSpec":
        if self.data.packing and self.distill.sequence is not None:
            raise ValueError(f"distill.sequence ({self.distill.sequence.mode}) continues each window's first "
                             "prompt_tokens, which in a packed window belong to one example of several: set "
                             "data.packing: false for sequence-level or on-policy KD")
        return self


def is_lm_spec(data: Any) -> bool:
    """Whether a loaded YAML document is a language-model pipeline (``task: lm``)."""
    return isinstance(data, dict) and data.get("task") == "lm"
