"""``--resume`` after the driver is killed (SIGKILL): finished trials are not run again, the
interrupted one continues from its checkpoint, every trial ends up recorded (slow)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import pytest

from hparams_support import REPO, tiny_search, write_pipeline, write_search

# long enough that the second trial is still running 4 s after the first one ends, on an idle
# machine too (at 120 epochs it could finish inside that window, leaving nothing to resume)
EPOCHS = 360


@pytest.mark.slow
def test_resume_after_the_driver_is_killed(tmp_path):
    write_pipeline(tmp_path, **{"student.train.epochs": EPOCHS})  # several times the 4 s window below
    doc = tiny_search(tmp_path / "tiny.yaml", tmp_path, name="resume", budget={"trials": 3, "max_concurrent": 1},
                      scheduler={"type": "fifo"})
    spec = write_search(tmp_path, doc)
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "autokd", "search", "hparams", str(spec), "--out", str(out)]
    driver = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, start_new_session=True)
    finished, seen = [], []
    try:
        deadline = time.time() + 120
        for line in driver.stdout:
            seen.append(line)
            if line.startswith("[search] 1/3 trial "):
                finished.append(line.split()[3])
                break
            assert time.time() < deadline, "".join(seen)
        time.sleep(4.0)  # the second trial is part-way through, and Ray has snapshotted it
    finally:
        os.killpg(driver.pid, signal.SIGKILL)  # the driver and the Ray processes it started
        driver.wait(timeout=30)
    killed_at = time.time()
    assert finished, "".join(seen)
    first = finished[0]
    assert not (out / "trials.json").exists()

    res = subprocess.run(cmd + ["--resume"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert res.returncode == 0, res.stdout + res.stderr
    trials = {t["trial"]: t for t in json.loads((out / "trials.json").read_text())}
    assert len(trials) == 3 and all(t["status"] == "completed" and t["epochs"] == EPOCHS for t in trials.values()), \
        [(t["trial"], t["status"], t["reason"]) for t in trials.values()]
    # the trial that had finished was not run again: its last result predates the kill
    assert trials[first]["finished_at"] <= killed_at and trials[first]["resumed_from"] == 0
    # the trial running at the kill continued from a checkpoint instead of starting over
    others = [t for t in trials.values() if t["trial"] != first]
    assert any(t["resumed_from"] > 0 for t in others), [(t["trial"], t["resumed_from"]) for t in others]
    assert all(t["finished_at"] > killed_at for t in others)
