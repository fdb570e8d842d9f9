"""Where data-parallel workers exchange checkpoints when the nodes share no filesystem
(``runtime.storage``).

Without it, every worker reads and rank 0 writes the stage's own checkpoint folder, which every
node must then see. With ``runtime.storage`` (a folder every node sees, or a pyarrow filesystem
URI: ``s3://bucket/prefix``, ``gs://…``, ``hdfs://…``, ``file:///…``) each worker keeps its
checkpoints in a folder of its own node, and the run's files travel through the storage:

- the driver uploads what its checkpoint folder holds (a resumed run) before the workers start,
  and downloads what the workers left (the final checkpoint, the best weights, failure records,
  ``workers.json``) after they stop, also when they failed, so the same command resumes;
- each worker downloads the run's checkpoint before training; rank 0 uploads its checkpoint and
  best weights after each epoch's checkpoint (step checkpoints inside an epoch stay on its node:
  a resume on another node starts from the last epoch); a worker's failure record is uploaded
  as it stops.

Each file is written under a temporary name and moved into place (a rename on a local or mounted
filesystem; on object stores a copy, whose readers see the old object or the new one). The run's
files live under ``<storage>/<run>``, ``run`` the stage's name and checkpoint fingerprint.
"""

from __future__ import annotations

import os
from pathlib import Path

#: the files of a run that travel (the trainer's checkpoint and best weights, the workers' records)
RUN_FILES = ("last.safetensors", "best.safetensors", "workers.json")
FAILURE_GLOB = "worker_failure.*.json"


class RunStorage:
    """A run's folder on the storage of ``runtime.storage``."""

    def __init__(self, uri: str, run: str):
        from pyarrow import fs as pafs

        if "://" in uri:
            self.fs, base = pafs.FileSystem.from_uri(uri)
        else:  # a plain folder (every node's mount of the same share)
            self.fs, base = pafs.LocalFileSystem(), os.path.abspath(os.path.expanduser(uri))
        self.uri, self.root = uri, f"{base.rstrip('/')}/{run}"
        self.fs.create_dir(self.root, recursive=True)

    def _names(self, glob: str) -> list[str]:
        """The names of the run's stored files that match ``glob``."""
        import fnmatch

        from pyarrow import fs as pafs

        infos = self.fs.get_file_info(pafs.FileSelector(self.root, allow_not_found=True))
        return [Path(i.path).name for i in infos if i.type == pafs.FileType.File and fnmatch.fnmatch(Path(i.path).name, glob)]

    def upload(self, folder: Path, names: list[str] | None = None, missing_only: bool = False) -> list[str]:
        """Copy ``names`` (default: the run's files and failure records) that ``folder`` holds to
        the storage, each atomically; return those copied. ``missing_only``: leave the storage's
        own copies (the driver's start: what the workers last wrote is never older than the
        driver's copy, which came from the storage, even when the driver was killed before its download)."""
        from pyarrow import fs as pafs

        names = names if names is not None else list(RUN_FILES) + sorted(p.name for p in folder.glob(FAILURE_GLOB))
        sent = []
        for name in names:
            src = folder / name
            if not src.is_file():
                continue
            if missing_only and self.fs.get_file_info(f"{self.root}/{name}").type == pafs.FileType.File:
                continue
            tmp = f"{self.root}/.{name}.{os.getpid()}.tmp"
            with self.fs.open_output_stream(tmp) as out:
                out.write(src.read_bytes())
            self.fs.move(tmp, f"{self.root}/{name}")
            sent.append(name)
        return sent

    def download(self, folder: Path, names: list[str] | None = None) -> list[str]:
        """Copy the storage's copies of ``names`` (default: the run's files and failure records)
        into ``folder``, each atomically; return those copied."""
        from pyarrow import fs as pafs

        from autokd.utils.io import atomic_write_bytes

        names = names if names is not None else list(RUN_FILES) + self._names(FAILURE_GLOB)
        folder.mkdir(parents=True, exist_ok=True)
        got = []
        for name in names:
            path = f"{self.root}/{name}"
            if self.fs.get_file_info(path).type != pafs.FileType.File:
                continue
            with self.fs.open_input_stream(path) as src:
                atomic_write_bytes(folder / name, src.read())
            got.append(name)
        return got

    def clear_failures(self) -> None:
        """Remove an earlier attempt's failure records (a new attempt starts)."""
        for name in self._names(FAILURE_GLOB):
            self.fs.delete_file(f"{self.root}/{name}")
