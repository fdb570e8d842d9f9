"""Changed training code must train afresh: the checkpoint fingerprint holds the code's digest."""

from __future__ import annotations

import yaml

import autokd.stages.recipe as recipe
from autokd.stages import role_fingerprint, validate_pipeline
from autokd.utils.code import PACKAGE, TRAINING_CODE, source_digest, training_code_digest
from tests.conftest import TINY_SPEC


def test_source_digest_follows_every_file(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "loop.py").write_text("x = 1\n")
    (tmp_path / "cli").mkdir()
    (tmp_path / "cli" / "app.py").write_text("y = 1\n")
    before = source_digest(tmp_path, ("train",))
    (tmp_path / "cli" / "app.py").write_text("y = 2\n")  # not training code
    assert source_digest(tmp_path, ("train",)) == before
    (tmp_path / "train" / "loop.py").write_text("x = 2\n")
    assert source_digest(tmp_path, ("train",)) != before
    (tmp_path / "train" / "loop.py").write_text("x = 1\n")
    (tmp_path / "train" / "new.py").write_text("")
    assert source_digest(tmp_path, ("train",)) != before


def test_the_installed_digest_covers_the_training_packages():
    assert training_code_digest() == source_digest(PACKAGE, TRAINING_CODE)
    assert {"data", "losses", "train", "stages"} <= set(TRAINING_CODE)


def test_fingerprint_changes_with_the_code(monkeypatch):
    spec = validate_pipeline(yaml.safe_load(TINY_SPEC), check_paths=False)
    fp = role_fingerprint("teacher", spec, spec.teacher, "data", None)
    assert role_fingerprint("teacher", spec, spec.teacher, "data", None) == fp
    monkeypatch.setattr(recipe, "training_code_digest", lambda: "another-checkout")
    assert role_fingerprint("teacher", spec, spec.teacher, "data", None) != fp
