"""Manifests are never half-written: ``write_manifest`` goes through ``atomic_write_json``
(a temporary file in the same folder, then ``os.replace``), and a reader process looping over
a manifest that four writer processes keep replacing only ever reads whole, valid JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from autokd.lineage.manifest import MANIFEST, file_sha256, write_manifest

WRITERS = 4
ROUNDS = 15
PAYLOAD = 10_000  # numbers per manifest: ~80 KB of JSON, far more than one write() call

WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from autokd.lineage.manifest import write_manifest

    folder, i, rounds, n = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    (folder / f"ready{i}").touch()
    while not (folder / "go").exists():
        time.sleep(0.002)
    for k in range(rounds):
        payload = [i * 1000 + k + j for j in range(n + 997 * i)]
        write_manifest(folder, kind="student", content=[f"w{i}.bin"], root=folder.parent,
                       spec={"writer": i, "round": k, "payload": payload},
                       metrics={"checksum": sum(payload), "length": len(payload)})
""")

READER = textwrap.dedent("""
    import json, sys
    from pathlib import Path

    folder, expected = Path(sys.argv[1]), json.loads(sys.argv[2])
    reads, bad, versions = 0, [], set()
    while not (folder / "stop").exists():
        try:
            text = (folder / "manifest.json").read_text()
        except FileNotFoundError:
            continue
        reads += 1
        try:
            doc = json.loads(text)
            spec, metrics = doc["spec"], doc["metrics"]
            i = spec["writer"]
            ok = (doc["files"] == {f"w{i}.bin": expected[str(i)]} and len(spec["payload"]) == metrics["length"]
                  and sum(spec["payload"]) == metrics["checksum"] and text.endswith("}\\n"))
            if not ok:
                bad.append(f"inconsistent manifest from writer {i} round {spec['round']}")
            versions.add((i, spec["round"]))
        except (ValueError, KeyError, TypeError) as exc:
            bad.append(f"{type(exc).__name__}: {exc} ({len(text)} chars)")
    print(json.dumps({"reads": reads, "bad": bad[:5], "n_bad": len(bad), "versions": len(versions),
                      "writers": len({w for w, _ in versions})}))
""")


def test_write_manifest_replaces_atomically_in_the_same_folder(tmp_path, monkeypatch):
    folder = tmp_path / "a"
    folder.mkdir()
    (folder / "w.bin").write_bytes(b"x")
    calls = []
    real = os.replace

    def spy(src, dst, *args, **kwargs):
        calls.append((Path(src), Path(dst)))
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", spy)
    write_manifest(folder, kind="dataset", content=["w.bin"], root=tmp_path)
    assert len(calls) == 1
    src, dst = calls[0]
    assert dst == folder / MANIFEST and src.parent == folder and src.name.startswith(".manifest.json.")
    assert sorted(p.name for p in folder.iterdir()) == ["manifest.json", "w.bin"]  # no temp file left


def test_concurrent_writers_never_show_a_torn_manifest(tmp_path):
    folder = tmp_path / "artifact"
    folder.mkdir()
    expected = {}
    for i in range(WRITERS):
        (folder / f"w{i}.bin").write_bytes(os.urandom(1000))
        expected[str(i)] = file_sha256(folder / f"w{i}.bin")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    reader = subprocess.Popen([sys.executable, "-c", READER, str(folder), json.dumps(expected)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(folder), str(i), str(ROUNDS), str(PAYLOAD)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
               for i in range(WRITERS)]
    try:
        deadline = time.monotonic() + 120
        while not all((folder / f"ready{i}").exists() for i in range(WRITERS)):
            assert time.monotonic() < deadline, "writers did not start"
            assert all(w.poll() is None for w in writers), [w.communicate() for w in writers if w.poll() is not None]
            time.sleep(0.05)
        (folder / "go").touch()  # all writers start at once
        for w in writers:
            _, err = w.communicate(timeout=300)
            assert w.returncode == 0, err
    finally:
        (folder / "stop").touch()
        out, err = reader.communicate(timeout=60)
    assert reader.returncode == 0, err
    result = json.loads(out)
    assert result["n_bad"] == 0, result["bad"]
    # the reader really read while the writers replaced the file: many versions, from several writers
    assert result["reads"] > 20 and result["versions"] >= 5 and result["writers"] >= 2, result
    final = json.loads((folder / MANIFEST).read_text())
    assert final["spec"]["round"] == ROUNDS - 1
    assert not [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]  # no temp file left behind
