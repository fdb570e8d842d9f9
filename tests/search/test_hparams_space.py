"""The define-by-run space with real Optuna: conditional parameters exist only with their method,
every trial's patch validates, labels decode to model specs."""

from __future__ import annotations

import optuna
import pytest
import yaml

from autokd.search.hparams.space import Space
from autokd.search.hparams.spec import load_search_spec
from autokd.spec.document import apply_overrides
from autokd.stages import validate_pipeline

from hparams_support import tiny_search, write_pipeline, write_search

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture
def loaded(tmp_path):
    pipeline = write_pipeline(tmp_path)
    doc = tiny_search(pipeline, tmp_path)
    doc["space"]["student.model"] = {"type": "choice", "values": [
        {"name": "mlp", "params": {"hidden": [16]}}, {"name": "mlp", "params": {"hidden": [8, 8]}}]}
    return load_search_spec(write_search(tmp_path, doc), base_dir=tmp_path)


@pytest.mark.parametrize("sampler", ["random", "tpe"])
def test_conditional_parameters_only_with_their_method(loaded, sampler):
    space = Space.from_loaded(loaded)
    from autokd.search.hparams.samplers import SAMPLERS

    loaded.spec.sampler.n_startup_trials = 5
    sampler_obj = SAMPLERS[sampler](loaded.spec, space)
    study = optuna.create_study(direction="maximize", sampler=sampler_obj)
    seen = set()
    for i in range(40):
        trial = study.ask()
        params = space.suggest(trial)
        method = params["distill.method"]
        seen.add(method)
        assert ("distill.params.beta@dkd" in trial.params) == (method == "dkd"), trial.params
        patch = space.to_overrides(params)
        if method == "dkd":
            assert patch["distill.params"] == {"beta": params["distill.params.beta@dkd"], "warmup_epochs": 1}
        else:
            assert patch["distill.params"] == {}
        assert ("distill.features" in patch) == (method == "fitnet")
        assert patch["student.model"]["name"] == "mlp"  # the label decoded back to the model spec
        spec = validate_pipeline(apply_overrides(loaded.base, patch), root=loaded.root, check_paths=False)
        assert spec.distill.method == method
        if method == "fitnet":  # no temperature: not sampled, and the pipeline's T does not leak in
            assert "distill.temperature" not in trial.params and patch["distill.temperature"] is None
            assert spec.distill.temperature is None
        else:
            assert spec.distill.temperature == pytest.approx(params["distill.temperature"])
        study.tell(trial, float(i % 7))
    assert seen == {"kd", "dkd", "fitnet"}
    # Optuna recorded beta only in dkd trials
    for t in study.trials:
        assert ("distill.params.beta@dkd" in t.params) == (t.params["distill.method"] == "dkd")


def test_define_by_run_callable_is_picklable(loaded):
    import pickle

    space = Space.from_loaded(loaded)
    again = pickle.loads(pickle.dumps(space))
    params = space.first_params(method="dkd")
    assert again.to_overrides(params) == space.to_overrides(params)


def test_grid_and_fixed(tmp_path):
    pipeline = write_pipeline(tmp_path)
    doc = tiny_search(pipeline, tmp_path, sampler={"type": "grid"}, fixed={"student.train.epochs": 2})
    doc["space"] = {"distill.temperature": {"type": "choice", "values": [2.0, 4.0]},
                    "distill.method": {"type": "choice", "values": ["kd", "dkd"],
                                       "conditional": {"dkd": {"distill.params.beta": 2.0}}}}
    space = Space.from_loaded(load_search_spec(write_search(tmp_path, doc), base_dir=tmp_path))
    assert space.grid_size() == 4
    assert space.grid() == {"distill.temperature": [2.0, 4.0], "distill.method": ["kd", "dkd"]}
    patch = space.to_overrides({"distill.temperature": 4.0, "distill.method": "dkd"})
    assert patch == {"student.train.epochs": 2, "distill.temperature": 4.0, "distill.method": "dkd",
                     "distill.params": {"beta": 2.0}}
    assert yaml.safe_load(yaml.safe_dump(patch)) == patch


class _Recording:
    """A real Optuna trial that remembers the order in which parameters were asked for."""

    def __init__(self, trial):
        self.trial, self.asked = trial, []

    def __getattr__(self, name):
        fn = getattr(self.trial, name)

        def ask(pname, *args, **kwargs):
            self.asked.append(pname)
            return fn(pname, *args, **kwargs)

        return ask


def test_temperature_is_asked_after_a_method_that_decides_it(loaded):
    """fitnet has no temperature: the method is asked first, and T only when the choice has one."""
    space = Space.from_loaded(loaded)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(12):
        rec = _Recording(study.ask())
        params = space.suggest(rec)
        assert rec.asked[0] == "distill.method"
        assert ("distill.temperature" in rec.asked) == (params["distill.method"] != "fitnet")


def test_file_order_is_kept_when_every_method_has_a_temperature(tmp_path):
    """Nothing to decide: dimensions are asked in file order, so seeded searches sample as before."""
    pipeline = write_pipeline(tmp_path)
    doc = tiny_search(pipeline, tmp_path)
    doc["space"]["distill.method"]["values"] = ["kd", "dkd"]
    doc["space"]["distill.method"]["conditional"].pop("fitnet", None)
    loaded = load_search_spec(write_search(tmp_path, doc), base_dir=tmp_path)
    space = Space.from_loaded(loaded)
    rec = _Recording(optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)).ask())
    space.suggest(rec)
    top = [name for name in rec.asked if "@" not in name]
    assert top == list(doc["space"])  # temperature, alpha, method: as written


def test_describe_names_a_conditional_knob_with_its_method(loaded):
    space = Space.from_loaded(loaded)
    params = space.first_params(method="dkd")
    params["distill.params.beta@dkd"] = 2.5
    text = space.describe(params)
    assert "method=dkd" in text and "beta@dkd=2.5" in text and "alpha=" in text


def test_a_trial_another_process_is_still_sampling_has_no_patch_yet(loaded):
    """A RUNNING trial of a shared study may hold only its first parameters (the race the
    two-process sqlite test hit): its record says running, with an empty patch, instead of a KeyError."""
    from types import SimpleNamespace

    from autokd.search.hparams.optuna_backend import records_from_study

    space = Space.from_loaded(loaded)
    study = optuna.create_study(direction="maximize")
    done = study.ask()
    params = space.suggest(done)
    study.tell(done, 0.5)
    half = study.ask()  # another process has sampled one parameter so far
    half.suggest_categorical("distill.method", ["kd", "dkd", "fitnet"])
    inputs = SimpleNamespace(data_sha256="d", teacher_sha256="t", teacher_outputs_sha256="o", root="r")
    ctx = SimpleNamespace(space=space, objectives={"student.accuracy": "max"}, inputs=inputs)
    first, second = records_from_study(study, ctx)
    assert first.patch == space.to_overrides(params) and first.patch["distill.method"] == params["distill.method"]
    assert second.status == "running" and second.patch == {}
