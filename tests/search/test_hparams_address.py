"""A wrong ``--address`` fails within seconds with a message of ours (exit code 2), instead of
Ray retrying the connection for over a minute; the forms left to Ray are not touched."""

from __future__ import annotations

import socket
import time

import pytest
from typer.testing import CliRunner

from autokd.search.hparams.address import RayAddressError, check_ray_address, parse_address

from hparams_support import tiny_search, write_pipeline, write_search

#: A bound on a hang, not a benchmark: Ray alone retries for well over 60 s.
LIMIT_S = 15.0


def closed_port() -> int:
    """A local port nothing listens on: bound by us, then released."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_cli_wrong_address_exits_2_within_seconds(tmp_path):
    import autokd.search.hparams.ray_backend  # noqa: F401 - importing Ray is not the hang we bound
    from autokd.cli import app

    pipeline = write_pipeline(tmp_path)
    spec = write_search(tmp_path, tiny_search(pipeline, tmp_path))
    address = f"127.0.0.1:{closed_port()}"
    start = time.monotonic()
    result = CliRunner().invoke(app, ["search", "hparams", str(spec), "--address", address,
                                      "--out", str(tmp_path / "out")])
    elapsed = time.monotonic() - start
    assert result.exit_code == 2, result.output
    assert f"could not reach a Ray cluster at {address}" in result.output
    assert "ray start --head" in result.output and "--address auto" in result.output
    assert elapsed < LIMIT_S, f"took {elapsed:.1f} s"
    # it failed before preparing the inputs (no teacher was trained for a search that cannot run)
    assert not (tmp_path / "artifacts" / "teacher").exists()


def test_client_address_names_the_client_server():
    address = f"ray://127.0.0.1:{closed_port()}"
    start = time.monotonic()
    with pytest.raises(RayAddressError, match=r"at ray://127\.0\.0\.1:\d+ within 5 s \(connection refused\)"
                                              r".*Ray client server"):
        check_ray_address(address)
    assert time.monotonic() - start < LIMIT_S


def test_listening_address_passes():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        check_ray_address(f"127.0.0.1:{port}")
        check_ray_address(f"ray://127.0.0.1:{port}")


@pytest.mark.parametrize("address,parsed", [
    ("10.0.0.5:6379", ("10.0.0.5", 6379, False)),
    ("ray://head.example:10001", ("head.example", 10001, True)),
    ("[::1]:6379", ("::1", 6379, False)),
    ("auto", None), ("LOCAL", None), ("headnode", None), ("http://head:8265", None),
])
def test_parse_address(address, parsed):
    assert parse_address(address) == parsed


def test_forms_left_to_ray_are_not_checked():
    for address in (None, "", "auto", "local"):
        check_ray_address(address)  # no connection attempted, nothing raised


def test_bad_port_is_named():
    with pytest.raises(RayAddressError, match=r"--address 10\.0\.0\.5:99999: expected HOST:PORT"):
        check_ray_address("10.0.0.5:99999")


@pytest.mark.slow
def test_port_that_is_not_ray_gets_our_error(monkeypatch):
    """The TCP check passes (something listens) but Ray cannot connect: Ray's ConnectionError
    becomes ours, naming the address (about 40 s: Ray's own GCS timeouts, one retry)."""
    import threading

    import ray

    from autokd.search.hparams.ray_backend import start_ray

    if ray.is_initialized():
        ray.shutdown()
    monkeypatch.setenv("RAY_gcs_server_port_wait_time_s", "1")  # one connection attempt, not 20
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        address = f"127.0.0.1:{server.getsockname()[1]}"

        def accept_and_hang_up():
            while True:
                try:
                    conn, _ = server.accept()
                except OSError:
                    return
                conn.close()

        threading.Thread(target=accept_and_hang_up, daemon=True).start()
        with pytest.raises(RayAddressError, match=rf"could not reach a Ray cluster at {address} \("):
            start_ray(address)
    assert not ray.is_initialized()
