"""The search backends: name -> the engine that runs a search's trials.

A backend is a function ``run(loaded, ctx, out_dir, trials, *, address, resume, storage, overwrite,
progress, log, recorder) -> list[TrialRecord]`` named by an import path
(``package.module:function``, the rule of :mod:`autokd.utils.imports`), so its module (and Ray
or Optuna with it) is imported only when a search uses it. ``preflight`` (optional, an import
path too) is called with the search's ``address`` and ``storage`` before the inputs are made, so
a wrong option fails at once instead of after the data and the teacher are ready::

    register_backend("ray", "autokd.search.hparams.ray_backend:run_ray",
                     summary="Ray Tune + Optuna sampler", preflight="autokd.search.hparams.backends:ray_preflight")

This module imports only the standard library and :mod:`autokd.utils.imports`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from autokd.utils.imports import import_object

__all__ = ["Backend", "BACKENDS", "available_backends", "get_backend", "register_backend"]


@dataclass(frozen=True)
class Backend:
    """One search engine: where its run function lives and what to check before a search."""

    name: str
    target: str  # "package.module:run_function"
    summary: str = ""
    preflight: str | None = None  # "package.module:function(address=…, storage=…)"

    def load(self) -> Callable[..., Any]:
        """The backend's run function (imports its module, e.g. Ray)."""
        return import_object(self.target, f"search backend {self.name!r}")

    def check(self, *, address: str | None = None, storage: str | None = None) -> None:
        """Run the backend's preflight check (raises when an option cannot work)."""
        if self.preflight:
            import_object(self.preflight, f"preflight of search backend {self.name!r}")(address=address,
                                                                                       storage=storage)


#: The registered backends, in registration order (the first is the default).
BACKENDS: dict[str, Backend] = {}


def register_backend(name: str, target: str, *, summary: str = "", preflight: str | None = None) -> Backend:
    """Register the backend ``name`` whose run function is at ``target`` (``pkg.module:function``)."""
    if name in BACKENDS:
        raise ValueError(f"search backend {name!r} registered twice")
    if ":" not in target:
        raise ValueError(f"search backend {name!r}: target {target!r} is not 'package.module:function'")
    backend = Backend(name=name, target=target, summary=summary, preflight=preflight)
    BACKENDS[name] = backend
    return backend


def available_backends() -> list[str]:
    """The registered backend names, in registration order."""
    return list(BACKENDS)


def get_backend(name: str) -> Backend:
    """The backend registered as ``name``; ``ValueError`` naming the valid ones otherwise."""
    try:
        return BACKENDS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown backend {name!r}; backends: {', '.join(BACKENDS)}") from None


def ray_preflight(*, address: str | None = None, storage: str | None = None) -> None:
    """A wrong ``--address`` fails now, not after the inputs are made."""
    from autokd.search.hparams.address import check_ray_address

    check_ray_address(address)


register_backend("ray", "autokd.search.hparams.ray_backend:run_ray", summary="Ray Tune + Optuna sampler",
                 preflight="autokd.search.hparams.backends:ray_preflight")
register_backend("optuna", "autokd.search.hparams.optuna_backend:run_optuna", summary="Optuna alone")
