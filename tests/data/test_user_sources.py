"""A user's reader / corpus named by ``pkg.module:function`` import path (data.source)."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

from autokd.data.readers import DataReadError, read_dataset

READER_MODULE = textwrap.dedent('''
    import numpy as np
    from autokd.data.readers.base import finalize, require_file, require_path

    def read_pairs(path, *, label_column="label"):
        p = require_file(require_path(path, "user"))
        rows = [line.split(",") for line in p.read_text().splitlines()]
        header, body = rows[0], rows[1:]
        col = header.index(label_column)
        x = np.array([[float(v) for i, v in enumerate(r) if i != col] for r in body])
        y = np.array([int(r[col]) for r in body])
        return finalize(x, y, ["a", "b"], p, {"format": "user"})

    NOT_CALLABLE = 3
''')


@pytest.fixture
def user_reader(tmp_path, monkeypatch):
    (tmp_path / "akd_user_reader.py").write_text(READER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    csv = tmp_path / "pairs.csv"
    lines = ["f1,f2,label"] + [f"{i},{i * 2},{i % 2}" for i in range(12)]
    csv.write_text("\n".join(lines) + "\n")
    return csv


def test_read_dataset_user_reader(user_reader):
    ds = read_dataset("akd_user_reader:read_pairs", user_reader, label_column="label")
    assert ds.x.shape == (12, 2) and ds.x.dtype == np.float32
    assert ds.y.tolist() == [i % 2 for i in range(12)]
    assert ds.class_names == ["a", "b"]
    assert ds.info["format"] == "user"


def test_user_reader_options_checked(user_reader):
    with pytest.raises(DataReadError, match="unknown option.*bogus"):
        read_dataset("akd_user_reader:read_pairs", user_reader, bogus=1)


def test_user_reader_errors(user_reader):
    with pytest.raises(DataReadError, match="cannot import module 'akd_no_such_mod'"):
        read_dataset("akd_no_such_mod:read", user_reader)
    with pytest.raises(DataReadError, match="has no attribute 'missing'"):
        read_dataset("akd_user_reader:missing", user_reader)
    with pytest.raises(DataReadError, match="not callable"):
        read_dataset("akd_user_reader:NOT_CALLABLE", user_reader)
    with pytest.raises(DataReadError, match="unknown data source 'nope'.*package.module:function"):
        read_dataset("nope", user_reader)


def test_prepare_data_user_reader(user_reader, tmp_path):
    from autokd.data.prepare import prepare_data
    from autokd.spec.pipeline import DataSpec

    spec = DataSpec(source="akd_user_reader:read_pairs", path=str(user_reader), options={"label_column": "label"})
    prepared = prepare_data(spec, tmp_path / "prepared")
    assert sum(len(getattr(prepared, s)) for s in ("train", "val", "test")) == 12
    assert prepared.meta["source"] == "akd_user_reader:read_pairs"
    assert prepared.meta["class_names"] == ["a", "b"]
    assert (tmp_path / "prepared" / "meta.json").exists()


CORPUS_MODULE = textwrap.dedent('''
    def load(spec, root=None):
        return [f"document number {i} " * 3 for i in range(spec.holdout_every * 2)], {"source": "user"}

    def bad(spec, root=None):
        return [1, 2, 3], {}
''')


@pytest.fixture
def user_corpus(tmp_path, monkeypatch):
    (tmp_path / "akd_user_corpus.py").write_text(CORPUS_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))


def _text_spec(source: str):
    from autokd.spec.lm import TextDataSpec

    return TextDataSpec(source=source, holdout_every=3)


def test_user_corpus(user_corpus):
    from autokd.data.text.corpus import load_corpus

    corpus = load_corpus(_text_spec("akd_user_corpus:load"))
    assert corpus.info["source"] == "user"
    assert corpus.info["documents"] == {"train": 2, "val": 2, "test": 2}
    assert corpus.documents["val"][0].startswith("document number 2")


def test_user_corpus_errors(user_corpus):
    from autokd.data.text.corpus import load_corpus

    with pytest.raises(DataReadError, match="documents must be strings"):
        load_corpus(_text_spec("akd_user_corpus:bad"))
    with pytest.raises(DataReadError, match="cannot import module"):
        load_corpus(_text_spec("akd_missing_corpus:load"))
    with pytest.raises(DataReadError, match="unknown corpus source 'nope'"):
        load_corpus(_text_spec("nope"))


def test_builtin_corpora_registered():
    from autokd.data.text.corpus import load_corpus
    from autokd.data.text.sources import CORPORA

    assert set(CORPORA) >= {"pydoc_topics", "files"}
    corpus = load_corpus(_text_spec("pydoc_topics").model_copy(update={"block_chars": 4096}))
    assert corpus.info["source"] == "pydoc_topics" and corpus.chars("train") > 0


def test_validate_accepts_user_reader_and_refuses_a_missing_one(user_reader):
    from autokd.spec.errors import SpecError
    from autokd.stages.validate import validate_pipeline

    doc = {"data": {"source": "akd_user_reader:read_pairs", "path": str(user_reader)}}
    assert validate_pipeline(doc).data.source == "akd_user_reader:read_pairs"
    with pytest.raises(SpecError) as err:
        validate_pipeline({"data": {"source": "akd_user_reader:missing", "path": str(user_reader)}}, file="p.yaml")
    text = str(err.value)
    assert "data.source" in text and "has no attribute 'missing'" in text


def test_lm_validate_accepts_user_corpus_and_refuses_an_unknown_one(user_corpus):
    from autokd.spec.errors import SpecError
    from autokd.stages.lm_validate import validate_lm_pipeline

    doc = {"task": "lm", "data": {"source": "akd_user_corpus:load"}}
    assert validate_lm_pipeline(doc, check_paths=False).data.source == "akd_user_corpus:load"
    with pytest.raises(SpecError) as err:
        validate_lm_pipeline({"task": "lm", "data": {"source": "webtext"}}, file="lm.yaml", check_paths=False)
    text = str(err.value)
    assert "data.source" in text and "files" in text and "pydoc_topics" in text
