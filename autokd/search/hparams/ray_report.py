"""The Ray Tune side of a trial: :class:`RayReporter` (``ray.tune.report`` with the epoch's
checkpoint, resuming from ``ray.tune.get_checkpoint()``) and :func:`ray_trainable`, the function
trainable :mod:`.ray_backend` hands to ``tune.with_parameters``. The trial itself
(:mod:`.trial`) knows nothing of Ray."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from autokd.search.hparams.trial import TrialContext, TrialFailed, failure_result, run_trial

__all__ = ["RayReporter", "ray_trainable"]


class RayReporter:
    """``ray.tune.report`` with the epoch's checkpoint; resumes from ``ray.tune.get_checkpoint()``."""

    def __init__(self):
        from ray import tune

        self._dir = Path(tempfile.mkdtemp(prefix="akd-trial-"))
        checkpoint = tune.get_checkpoint()
        if checkpoint is not None:
            with checkpoint.as_directory() as d:
                for f in Path(d).iterdir():
                    if f.is_file():
                        shutil.copy2(f, self._dir / f.name)

    def checkpoint_dir(self) -> Path:
        return self._dir

    def report(self, metrics: dict[str, Any], checkpoint_dir: Path | None) -> None:
        from ray import tune

        checkpoint = tune.Checkpoint.from_directory(str(checkpoint_dir)) if checkpoint_dir else None
        tune.report(metrics, checkpoint=checkpoint)

    def node(self) -> str:
        import ray

        return ray.get_runtime_context().get_node_id()[:12]

    def close(self) -> None:
        shutil.rmtree(self._dir, ignore_errors=True)


def ray_trainable(config: dict[str, Any], ctx: TrialContext) -> None:
    """The Ray Tune function trainable (``tune.with_parameters(ray_trainable, ctx=…)``)."""
    from ray import tune

    reporter = RayReporter()
    try:
        run_trial(config, ctx, reporter)
    except TrialFailed as exc:
        tune.report(failure_result(exc, ctx.objectives))
    finally:
        reporter.close()
