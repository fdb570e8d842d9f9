"""A cheap reachability check of ``--address`` before Ray is asked to connect.

``ray.init(address="HOST:PORT")`` with nothing listening there keeps retrying for well over
a minute, printing only Ray's own connection warnings. :func:`check_ray_address` opens a plain
TCP connection to the address first (a few seconds at most) and raises
:class:`RayAddressError`, which names the address and what to check, when nothing answers;
:func:`unreachable` builds the same error when the port answers but Ray still cannot connect
(something else listens there).

Only ``HOST:PORT`` (a cluster's GCS) and ``ray://HOST:PORT`` (the Ray client server) are
checked; ``None``, ``auto``, ``local``, other schemes and addresses without a port are left
to Ray. Nothing here imports Ray.
"""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

#: Seconds to wait for the TCP connection (a firewalled port drops packets silently).
CONNECT_TIMEOUT_S = 5.0

_LEFT_TO_RAY = ("auto", "local")
_CLIENT_SCHEME = "ray://"


class RayAddressError(ValueError):
    """``--address`` does not reach a Ray cluster; the message names it and what to check."""


def parse_address(address: str) -> tuple[str, int, bool] | None:
    """``(host, port, is_client)`` for ``HOST:PORT`` / ``ray://HOST:PORT``; None for the forms
    left to Ray. A port that is not a number in 0..65535 is a :class:`RayAddressError`."""
    text = address.strip()
    if text.lower() in _LEFT_TO_RAY:
        return None
    is_client = text.lower().startswith(_CLIENT_SCHEME)
    if is_client:
        text = text[len(_CLIENT_SCHEME):]
    elif "://" in text:
        return None
    parts = urlsplit(f"//{text}")
    try:
        port = parts.port
    except ValueError:
        raise RayAddressError(
            f"--address {address}: expected HOST:PORT (e.g. 10.0.0.5:6379), ray://HOST:PORT or auto; "
            "the port is not a number from 0 to 65535"
        ) from None
    if port is None or not parts.hostname:
        return None
    return parts.hostname, port, is_client


def _what_to_check(parsed: tuple[str, int, bool] | None) -> str:
    if parsed is None:  # auto, or a form Ray parses itself
        return ("start one with `ray start --head`, pass its HOST:PORT (GCS port, default 6379), "
                "or leave --address out to start Ray in this process")
    _, port, is_client = parsed
    if is_client:
        return (f"is a Ray client server listening on port {port} there (`ray start --head` starts "
                "one on port 10001)?")
    return (f"is `ray start --head` running there, and is port {port} its GCS port (default 6379)? "
            "use --address auto for a cluster started on this machine, or leave --address out to "
            "start Ray in this process")


def unreachable(address: str, reason: str) -> RayAddressError:
    """The error for an ``address`` no Ray cluster answers at: the address, ``reason`` (what
    went wrong), and what to check."""
    return RayAddressError(f"could not reach a Ray cluster at {address} {reason}: "
                           + _what_to_check(parse_address(address)))


def check_ray_address(address: str | None, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Raise :class:`RayAddressError` unless something accepts a TCP connection at
    ``address`` within ``timeout_s`` seconds (forms left to Ray pass unchecked)."""
    if not address:
        return
    parsed = parse_address(address)
    if parsed is None:
        return
    host, port, _ = parsed
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return
    except socket.gaierror as exc:
        reason = f"cannot resolve host {host!r}: {exc.strerror or exc}"
    except TimeoutError:
        reason = "no answer"
    except ConnectionRefusedError:
        reason = "connection refused"
    except OSError as exc:
        reason = exc.strerror or str(exc)
    raise unreachable(address, f"within {timeout_s:g} s ({reason})")
