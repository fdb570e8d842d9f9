"""Language models on the one training loop: labels-only, token KD from the top-k cache, resume."""

from __future__ import annotations

import pytest
import torch

from autokd.data.text.prepare import prepare_text
from autokd.models import build_model
from autokd.spec.lm import TextDataSpec
from autokd.spec.pipeline import TrainSpec
from autokd.train.lm_objective import LMDistillObjective
from autokd.train.topk_cache import compute_topk, load_topk, save_topk
from autokd.train.trainer import CrossEntropyObjective, evaluate_split, train

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def text(tmp_path_factory):
    spec = TextDataSpec(tokenizer={"vocab_size": 320}, context=32, max_documents=12, holdout_every=4)
    return prepare_text(spec, tmp_path_factory.mktemp("text"))


def _lm(text, width, layers, seed=0):
    torch.manual_seed(seed)
    return build_model("decoder", {"width": width, "layers": layers, "heads": 2}, (text.context,), text.vocab_size)


def _cfg(**kw):
    return TrainSpec(epochs=kw.pop("epochs", 2), batch_size=16, lr=3e-3, weight_decay=0.0, **kw)


@pytest.fixture(scope="module")
def teacher(text):
    model = _lm(text, 32, 2)
    train(model, text.split("train"), text.split("val"), _cfg(epochs=3), CrossEntropyObjective(), device=CPU,
          progress=False)
    return model


def test_labels_only_lm_learns(text, teacher):
    untrained = evaluate_split(_lm(text, 32, 2, seed=1), text.split("val"), CPU)
    trained = evaluate_split(teacher, text.split("val"), CPU)
    assert untrained["loss"] == pytest.approx(torch.log(torch.tensor(float(text.vocab_size))).item(), rel=0.05)
    assert trained["loss"] < untrained["loss"] - 0.5  # perplexity well below the vocabulary size


def test_topk_cache_round_trip_and_bytes_per_token(text, teacher, tmp_path):
    x = text.split("train").x
    cache = compute_topk(teacher, x, 8, 1.0, CPU, text.sha256, "t" * 64)
    assert cache.logprobs.shape == (len(x), text.context, 8) and cache.indices.dtype == torch.int16
    assert cache.bytes_per_token == 8 * 2 + 8 * 2 + 2
    save_topk(tmp_path / "c.safetensors", cache)
    back = load_topk(tmp_path / "c.safetensors")
    assert torch.equal(back.logprobs, cache.logprobs) and torch.equal(back.indices, cache.indices)
    assert torch.equal(back.tail, cache.tail) and back.temperature == 1.0 and back.teacher_sha256 == "t" * 64
    # the top-k probabilities and the tail add up to one
    total = back.logprobs.float().exp().sum(-1) + back.tail.float().exp()
    torch.testing.assert_close(total, torch.ones_like(total), atol=5e-3, rtol=0)
    sparse = back.lookup(torch.tensor([0, 2]))
    assert sparse.logprobs.dtype == torch.float32 and sparse.shape == (2, text.context)


def test_topk_cache_refuses_another_k_temperature_data_or_teacher(text, teacher, tmp_path):
    from autokd.train.teacher_cache import TeacherCacheMismatch

    x = text.split("train").x
    save_topk(tmp_path / "c.safetensors", compute_topk(teacher, x, 8, 2.0, CPU, text.sha256, "t" * 64))
    back = load_topk(tmp_path / "c.safetensors")
    back.check(text.sha256, len(x), "t" * 64, k=8, temperature=2.0)  # the cache it is: accepted
    for kwargs, match in (({"k": 4}, "k=8 tokens.*k=4"), ({"temperature": 1.0}, "temperature 2.*at 1"),
                          ({"data_sha256": "d" * 64}, "computed on data"), ({"teacher_sha256": "u" * 64},
                                                                            "different teacher"),
                          ({"n_rows": len(x) + 1}, "windows")):
        args = {"data_sha256": text.sha256, "n_rows": len(x), "teacher_sha256": "t" * 64, "k": 8,
                "temperature": 2.0, **kwargs}
        with pytest.raises(TeacherCacheMismatch, match=match):
            back.check(**args)


def test_token_kd_from_cache_trains_and_resumes_bit_identically(text, teacher, tmp_path):
    cache = compute_topk(teacher, text.split("train").x, 16, 1.0, CPU, text.sha256, "t" * 64)

    def run(epochs, ckpt, seed=3):
        student = _lm(text, 16, 1, seed=seed)
        # as stages.lm.build_lm_objective builds it for a cached teacher: no live teacher, no extra terms
        objective = LMDistillObjective("fkl", {}, 0.5, teacher=None, cache=cache, representation=None, pairs=[],
                                       student_shapes=None, teacher_shapes=None, sequence=None, generations=None,
                                       seed=seed)
        result = train(student, text.split("train"), text.split("val"), _cfg(epochs=epochs), objective, device=CPU,
                       checkpoint_dir=ckpt, run_fingerprint="lm-test", progress=False)
        return student, result, objective

    full, res_full, obj = run(2, tmp_path / "a")
    assert obj.teacher_calls == 0  # the cache, never the teacher
    assert res_full.history[-1]["val_loss"] < res_full.history[0]["val_loss"]
    run(1, tmp_path / "b")  # "crash" after epoch 1: the checkpoint holds it
    resumed, res_resumed, _ = run(2, tmp_path / "b")
    assert res_resumed.resumed_from == 1
    assert res_resumed.history == res_full.history
    for (name, a), (_, b) in zip(full.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), name


def test_live_teacher_and_cached_dense_agree_at_full_k(text, teacher):
    batch_x = text.split("train").x[:4]
    cache = compute_topk(teacher, batch_x, text.vocab_size, 2.0, CPU, text.sha256, "t")
    from autokd.data.batches import Batch
    from autokd.losses import create

    student = _lm(text, 16, 1, seed=4)
    batch = Batch(batch_x, text.split("train").y[:4], torch.arange(4))
    # build_lm_objective's two cases: teacher_outputs live (teacher, no cache) and cache (cache, no teacher)
    live = LMDistillObjective("jsd", {"temperature": 2.0}, 1.0, teacher=teacher, cache=None, pairs=[], seed=0)
    cached = LMDistillObjective("jsd", {"temperature": 2.0}, 1.0, teacher=None, cache=cache, pairs=[], seed=0)
    a, _, pa = live(student, batch)
    b, _, pb = cached(student, batch)
    assert live.teacher_calls == 1 and cached.teacher_calls == 0
    assert a.item() > 1e-3 and a.item() == pytest.approx(b.item(), rel=2e-3)  # fp16 storage of the cached log-probs
    assert pa["token"].item() == pytest.approx(pb["token"].item(), rel=2e-3)
    assert create("jsd").__class__.__name__ == "GeneralizedJSD"


def test_lm_metrics(text, teacher):
    from autokd.evaluate.lm import lm_metrics, rouge_l

    student = _lm(text, 16, 1, seed=5)
    test = text.split("test")
    m = lm_metrics(student, teacher, test, bytes_per_token=text.meta["bytes_per_token"]["test"],
                   tokenizer=text.tokenizer(), prompts=8, prompt_tokens=8, new_tokens=8, speed=False)
    assert m["perplexity"] == pytest.approx(torch.exp(torch.tensor(m["nll"])).item(), rel=1e-6)
    assert m["bits_per_byte"] == pytest.approx(m["nll"] / 0.6931471805599453 / text.meta["bytes_per_token"]["test"])
    assert 0.0 <= m["top1_agreement"] <= 1.0 and m["kl_to_teacher"] > 0 and 0.0 <= m["rouge_l"] <= 1.0
    same = lm_metrics(teacher, teacher, test, bytes_per_token=1.0, tokenizer=text.tokenizer(), prompts=8,
                      prompt_tokens=8, new_tokens=8, speed=False)
    assert same["top1_agreement"] == 1.0 and same["kl_to_teacher"] == pytest.approx(0.0, abs=1e-6)
    assert same["rouge_l"] == 1.0  # greedy continuations of one model are identical
    assert rouge_l(["a b c d"], ["a c d e"]) == pytest.approx(0.75)  # LCS 3 of 4 and 4


def test_lm_metrics_many_equals_one_pass_per_student(text, teacher):
    """The teacher's logits and greedy continuations computed once give every student the
    figures of the old path (its own teacher pass, written out here as it was)."""
    import torch.nn.functional as F

    from autokd.evaluate.lm import lm_metrics_many, prompts_from, rouge_l, teacher_nll_of_samples

    test, tok = text.split("test"), text.tokenizer()
    students = {"a": _lm(text, 16, 1, seed=5), "b": _lm(text, 16, 2, seed=6), "c": teacher}
    kw = dict(bytes_per_token=text.meta["bytes_per_token"]["test"], tokenizer=tok, prompts=8, prompt_tokens=8,
              new_tokens=8, speed=False)
    many = lm_metrics_many(students, teacher, test, **kw)
    assert list(many) == ["a", "b", "c"] and many["c"]["top1_agreement"] == 1.0
    p = prompts_from(test, 8, 8)
    with torch.no_grad():
        t_text = tok.decode_batch(teacher.generate(p, 8)[:, 8:].tolist())
        for name, model in students.items():
            nll = agree = kl = 0.0
            count = 0
            for start in range(0, len(test.x), 32):  # the old teacher_agreement, one student at a time
                x, y = test.x[start:start + 32], test.y[start:start + 32]
                s_logits, t_logits = model(x).float(), teacher(x).float()
                nll += F.cross_entropy(s_logits.reshape(-1, s_logits.shape[-1]), y.reshape(-1), reduction="sum").item()
                agree += (s_logits.argmax(-1) == t_logits.argmax(-1)).sum().item()
                kl += F.kl_div(F.log_softmax(s_logits, -1), F.log_softmax(t_logits, -1), reduction="sum",
                               log_target=True).item()
                count += y.numel()
            m = many[name]
            assert (m["nll"], m["top1_agreement"], m["kl_to_teacher"]) == (nll / count, agree / count, kl / count)
            assert m["rouge_l"] == rouge_l(tok.decode_batch(model.generate(p, 8)[:, 8:].tolist()), t_text)
            assert m["teacher_nll_of_samples"] == teacher_nll_of_samples(model, teacher, p, 8, 0)


@pytest.mark.parametrize("gate", ["fixed", "learned"])
def test_sequence_level_hybrid_objective(text, teacher, gate):
    from autokd.data.batches import Batch
    from autokd.spec.lm import SequenceSpec
    from autokd.train.lm_objective import LMDistillObjective
    from autokd.train.sequence import teacher_generations

    x = text.split("train").x
    gens = teacher_generations(teacher, x[:6], 8, 0.0, 0, CPU)
    assert gens.shape == (6, text.context + 1) and torch.equal(gens[:, :8].long(), x[:6, :8])
    # greedy continuations are the teacher's argmax given the prefix
    logits = teacher(gens[:1, :-1].long())
    assert torch.equal(logits[0, 7:].argmax(-1), gens[0, 8:].long())
    seq = SequenceSpec(mode="seqkd", prompt_tokens=8, weight=0.25, gate=gate)
    cache = compute_topk(teacher, x[:6], 8, 1.0, CPU, text.sha256, "t")
    obj = LMDistillObjective("fkl", {}, 0.5, cache=cache, sequence=seq, generations=gens.long())
    student = _lm(text, 16, 1, seed=6)
    batch = Batch(x[:4], text.split("train").y[:4], torch.arange(4))
    loss, _, parts = obj(student, batch)
    g = 0.25
    want = 0.5 * parts["ce"] + 0.5 * ((1 - g) * parts["token"] + g * parts["sequence"])
    assert loss.item() == pytest.approx(want.item(), rel=1e-5)
    if gate == "learned":
        loss.backward()
        assert obj.gate_logit.grad is not None and list(obj.parameters())


def test_on_policy_batches_are_seeded_and_use_the_students_samples(text, teacher):
    from autokd.data.batches import Batch
    from autokd.spec.lm import SequenceSpec
    from autokd.train.lm_objective import LMDistillObjective

    seq = SequenceSpec(mode="on_policy", prompt_tokens=8, lmbda=1.0)
    student = _lm(text, 16, 1, seed=7)
    batch = Batch(text.split("train").x[:3], text.split("train").y[:3], torch.arange(3))
    values = []
    for _ in range(2):
        obj = LMDistillObjective("rkl", {}, 0.5, teacher=teacher, sequence=seq, seed=1)
        obj.on_epoch_start(0, 1)
        loss, logits, parts = obj(student, batch)
        values.append(loss.item())
        assert "on_policy" in parts and obj.teacher_calls == 1
    assert values[0] == values[1]  # the same (seed, epoch, step): the same samples
    never = LMDistillObjective("rkl", {}, 0.5, teacher=teacher, sequence=seq.model_copy(update={"lmbda": 0.0}))
    _, _, parts = never(student, batch)
    assert "on_policy" not in parts and "token" in parts


def test_sampling_uses_the_models_device_for_prompts_and_generator(text, teacher, monkeypatch):
    """On-policy KD and the evaluate stage's samples: the prompts handed to ``generate`` are the
    batch's own tensor (no copy to the host) and the generator lives on its device, as CUDA
    requires. (No GPU here: on CPU this pins where each comes from; the CUDA run is unverified.)"""
    from autokd.data.batches import Batch
    from autokd.evaluate.lm import prompts_from, teacher_nll_of_samples
    from autokd.spec.lm import SequenceSpec

    student = _lm(text, 16, 1, seed=7)
    calls = []
    original = student.generate

    def spy(prompt, n, **kw):
        calls.append((prompt, kw["generator"]))
        return original(prompt, n, **kw)

    monkeypatch.setattr(student, "generate", spy)
    batch = Batch(text.split("train").x[:3], text.split("train").y[:3], torch.arange(3))
    obj = LMDistillObjective("rkl", {}, 0.5, teacher=teacher, seed=1,
                             sequence=SequenceSpec(mode="on_policy", prompt_tokens=8, lmbda=1.0))
    obj(student, batch)
    prompts = prompts_from(text.split("val"), 4, 8)
    teacher_nll_of_samples(student, teacher, prompts, 4, seed=0)
    (p1, g1), (p2, g2) = calls
    assert p1.untyped_storage().data_ptr() == batch.x.untyped_storage().data_ptr() and g1.device == batch.x.device
    assert p2.device == prompts.device and g2.device == prompts.device
