"""Language-model evaluation: what a distilled LM is worth, beside its teacher.

- ``nll`` (mean next-token NLL in nats), ``perplexity`` = exp(nll), and ``bits_per_byte`` =
  nll / ln 2 / (UTF-8 bytes per token of the split): comparable across tokenizers;
- ``top1_agreement`` (student argmax = teacher argmax, per position) and ``kl_to_teacher``
  (KL(p_teacher ‖ q_student) per token, T = 1) on the same windows;
- ``teacher_nll_of_samples``: the teacher's mean NLL of the student's own sampled
  continuations (how plausible the student's text is to the teacher: on-policy quality);
- ``rouge_l``: ROUGE-L F1 (Google's ``rouge-score``, whitespace-separated words) of the
  student's greedy continuations against the teacher's, from the same prompts;
- ``tokens_per_s_b1`` / ``tokens_per_s_b32``: greedy generation with the KV cache, one thread
  (wall time: these live in the uncached metrics file only); ``params``.

Prompts are the first ``prompt_tokens`` of evenly spaced test windows; sampling uses a seeded
generator, so everything but the speeds is the same on every run. On chat data the per-token
figures count the targets the loss counts (``data.loss_on``: completion tokens by default), and
packed windows run with their segments.
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from autokd.data.batches import IGNORE
from autokd.data.prepare import Split
from autokd.evaluate.timing import torch_threads
from autokd.models import count_params
from autokd.utils.chunks import rows_per_pass


def _kwargs(split: Split, start: int, stop: int, device: torch.device) -> dict:
    """A packed split's segments for rows ``start:stop`` (nothing for unpacked windows)."""
    return {} if split.segments is None else {"segments": split.segments[start:stop].to(device)}


@torch.no_grad()
def _logits_batches(model: nn.Module, split: Split, device: torch.device, batch_size: int):
    model.eval().to(device)
    batch_size = rows_per_pass(model, split.x, device, batch_size)  # bounded logits at a large vocabulary or context
    for start in range(0, len(split.x), batch_size):
        stop = start + batch_size
        yield start, stop, model(split.x[start:stop].to(device), **_kwargs(split, start, stop, device)).float()


@torch.no_grad()
def teacher_agreement(student: nn.Module, teacher: nn.Module, split: Split, device: torch.device,
                      batch_size: int = 32) -> dict[str, float]:
    """Student NLL, top-1 agreement with the teacher and KL(teacher ‖ student) per token."""
    return teacher_agreement_many({"student": student}, teacher, split, device, batch_size)["student"]


@torch.no_grad()
def teacher_agreement_many(students: dict[str, nn.Module], teacher: nn.Module, split: Split, device: torch.device,
                           batch_size: int = 32) -> dict[str, dict[str, float]]:
    """:func:`teacher_agreement` of several students in one pass over the split: the teacher's
    logits, argmax and log-softmax are computed once a batch, not once a student (the sums run
    in the same order, so each student's figures are the ones a pass of its own gives)."""
    sums = {name: [0.0, 0.0, 0.0] for name in students}  # nll, agree, kl
    count = 0
    teacher.eval().to(device)
    for model in students.values():
        model.eval().to(device)
    batch_size = rows_per_pass(teacher, split.x, device, batch_size)  # the teacher's vocabulary bounds a pass
    for start in range(0, len(split.x), batch_size):
        x = split.x[start:start + batch_size].to(device)
        y = split.y[start:start + batch_size].to(device)
        kw = _kwargs(split, start, start + batch_size, device)
        keep = y != IGNORE  # chat data: the completion tokens (all of them for plain text)
        masked = not bool(keep.all())
        t_logits = teacher(x, **kw).float()
        if masked:
            t_logits = t_logits[keep]
        t_top, log_p = t_logits.argmax(-1), F.log_softmax(t_logits, -1)
        for name, model in students.items():
            s_logits = model(x, **kw).float()
            if masked:
                s_logits = s_logits[keep]
            v = s_logits.shape[-1]
            acc = sums[name]
            acc[0] += F.cross_entropy(s_logits.reshape(-1, v), y[keep].reshape(-1) if masked else y.reshape(-1),
                                      reduction="sum").item()
            acc[1] += (s_logits.argmax(-1) == t_top).sum().item()
            acc[2] += F.kl_div(F.log_softmax(s_logits, -1), log_p, reduction="sum", log_target=True).item()
        count += int(keep.sum())
    return {name: {"nll": nll / count, "top1_agreement": agree / count, "kl_to_teacher": kl / count}
            for name, (nll, agree, kl) in sums.items()}


def prompts_from(split: Split, n: int, prompt_tokens: int) -> torch.Tensor:
    """The first ``prompt_tokens`` of ``n`` evenly spaced windows (all of them if fewer)."""
    rows = torch.linspace(0, len(split) - 1, steps=min(n, len(split))).round().long().unique()
    return split.x[rows, :prompt_tokens]


@torch.no_grad()
def teacher_nll_of_samples(student: nn.Module, teacher: nn.Module, prompts: torch.Tensor, new_tokens: int,
                           seed: int = 0) -> float:
    """The teacher's mean NLL (nats/token) of the student's sampled continuations (T = 1)."""
    gen = torch.Generator(device=prompts.device).manual_seed(seed)  # CUDA sampling needs a CUDA generator
    seqs = student.generate(prompts, new_tokens, temperature=1.0, generator=gen)
    teacher.eval()
    logits = teacher(seqs[:, :-1]).float()
    p = prompts.shape[1]
    cont = logits[:, p - 1:]
    return F.cross_entropy(cont.reshape(-1, cont.shape[-1]), seqs[:, p:].reshape(-1)).item()


class _Whitespace:
    """Words are whitespace-separated (punctuation kept): the corpus is documentation and code,
    where rouge-score's default (lower-case alphanumerics only) leaves some continuations empty."""

    @staticmethod
    def tokenize(text: str) -> list[str]:
        return text.split()


def rouge_l(student_texts: list[str], teacher_texts: list[str]) -> float:
    """Mean ROUGE-L F1 of the student's texts against the teacher's (``rouge-score``, whitespace
    words); two continuations with no words at all count as identical (1.0)."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False, tokenizer=_Whitespace())
    scores = [1.0 if not s.split() and not t.split() else scorer.score(t, s)["rougeL"].fmeasure
              for s, t in zip(student_texts, teacher_texts)]
    return float(sum(scores) / len(scores)) if scores else float("nan")


@torch.no_grad()
def generation_speed(model: nn.Module, prompts: torch.Tensor, batch: int, new_tokens: int,
                     threads: int = 1) -> float:
    """Generated tokens per second (greedy, KV cache) at ``batch`` sequences, ``threads`` CPU threads."""
    rows = prompts[torch.arange(batch) % len(prompts)]
    with torch_threads(threads):
        model.generate(rows[:, :4], 2)  # warm-up
        t0 = time.perf_counter()
        model.generate(rows, new_tokens)
        seconds = time.perf_counter() - t0
    return batch * new_tokens / seconds


class TeacherReference:
    """What :func:`lm_metrics` needs from the teacher alone, kept for several students: the
    teacher's greedy continuations of the prompts (decoded), one list per continuation length."""

    def __init__(self, teacher: nn.Module, tokenizer: Any, prompts: torch.Tensor, prompt_tokens: int):
        self.teacher, self.tokenizer, self.prompts, self.prompt_tokens = teacher, tokenizer, prompts, prompt_tokens
        self._texts: dict[int, list[str]] = {}

    @torch.no_grad()
    def greedy_texts(self, new_tokens: int) -> list[str]:
        if new_tokens not in self._texts:
            ids = self.teacher.generate(self.prompts, new_tokens)[:, self.prompt_tokens:]
            self._texts[new_tokens] = self.tokenizer.decode_batch(ids.tolist())
        return self._texts[new_tokens]


def lm_metrics(student: nn.Module, teacher: nn.Module | None, split: Split, *, bytes_per_token: float,
               tokenizer: Any = None, device: torch.device = torch.device("cpu"), prompts: int = 50,
               prompt_tokens: int = 16, new_tokens: int = 32, seed: int = 0, speed: bool = True,
               agreement: dict[str, float] | None = None,
               reference: TeacherReference | None = None) -> dict[str, float]:
    """Every metric in the module doc (the teacher-relative ones when ``teacher`` is given).

    ``agreement`` (this student's :func:`teacher_agreement`, e.g. from :func:`teacher_agreement_many`)
    and ``reference`` (the teacher's greedy continuations) skip recomputing what they hold:
    :func:`lm_metrics_many` passes them when several students share a teacher.
    """
    student.eval().to(device)
    out: dict[str, float] = {"params": float(count_params(student))}
    if teacher is not None:
        out.update(agreement if agreement is not None else teacher_agreement(student, teacher, split, device))
    else:
        nll = count = 0.0
        for start, stop, logits in _logits_batches(student, split, device, 32):
            y = split.y[start:stop].to(device)
            nll += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="sum").item()
            count += int((y != IGNORE).sum())
        out["nll"] = nll / count
    out["perplexity"] = math.exp(out["nll"])
    out["bits_per_byte"] = out["nll"] / math.log(2) / bytes_per_token
    room = student.context - prompt_tokens
    new_tokens = max(1, min(new_tokens, room))
    p = prompts_from(split, prompts, prompt_tokens).to(device)
    if teacher is not None:
        out["teacher_nll_of_samples"] = teacher_nll_of_samples(student, teacher, p, new_tokens, seed)
        if tokenizer is not None:
            s_greedy = student.generate(p, new_tokens)[:, prompt_tokens:]
            if reference is None:
                reference = TeacherReference(teacher, tokenizer, p, prompt_tokens)
            out["rouge_l"] = rouge_l(tokenizer.decode_batch(s_greedy.tolist()), reference.greedy_texts(new_tokens))
    if speed:
        out["tokens_per_s_b1"] = generation_speed(student, p, 1, new_tokens)
        out["tokens_per_s_b32"] = generation_speed(student, p, 32, new_tokens)
    return out


def lm_metrics_many(students: dict[str, nn.Module], teacher: nn.Module, split: Split, *, bytes_per_token: float,
                    tokenizer: Any = None, device: torch.device = torch.device("cpu"), prompts: int = 50,
                    prompt_tokens: int = 16, new_tokens: int = 32, seed: int = 0,
                    speed: bool = True) -> dict[str, dict[str, float]]:
    """:func:`lm_metrics` of several students against one teacher, what depends on the teacher
    alone (its logits on the split, its greedy continuations) computed once; the figures are
    those of one :func:`lm_metrics` call per student."""
    teacher.eval().to(device)
    agreement = teacher_agreement_many(students, teacher, split, device)
    reference = None
    if tokenizer is not None:
        reference = TeacherReference(teacher, tokenizer, prompts_from(split, prompts, prompt_tokens).to(device),
                                     prompt_tokens)
    return {name: lm_metrics(model, teacher, split, bytes_per_token=bytes_per_token, tokenizer=tokenizer,
                             device=device, prompts=prompts, prompt_tokens=prompt_tokens, new_tokens=new_tokens,
                             seed=seed, speed=speed, agreement=agreement[name], reference=reference)
            for name, model in students.items()}
