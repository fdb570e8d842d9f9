"""Training-free student architecture search (DisWOT and zero-cost proxies).

``autokd search arch <space>`` scores every candidate student of a space at initialization
against the pipeline's teacher, ranks them, writes ``searches/<name>/ranking.{json,csv,md}``
and a ``shortlist.yaml`` of ``student.model`` specs; ``--validate N`` distills N of them to
measure how far the ranking can be trusted on this data.

Modules, each importing only those before it:
:mod:`.families` (genes, candidates, the family space models), :mod:`.proxies` (the proxy
registry, one module per proxy family), :mod:`.space` (the YAML space file), :mod:`.constraints`,
:mod:`.ranking` (scored/rejected candidates, the result, combination), :mod:`.calibrate`
(few-shot calibrated ranking fitted on distilled candidates), :mod:`.context` (pipeline
artifacts, batch, teacher), :mod:`.report`, :mod:`.validate` (distilling candidates with the
stages recipe), :mod:`.run` (exhaustive search, regularized evolution, :func:`run_arch_search`).
"""

from autokd.search.arch.context import ArchSearchError
from autokd.search.arch.families import SPACE_FAMILIES, Candidate, register_space_family
from autokd.search.arch.proxies import PROXIES, ProxyBatch, TeacherSignals, available_proxies, compute_proxy, \
    register_proxy, teacher_signals
from autokd.search.arch.ranking import SearchResult
from autokd.search.arch.run import run_arch_search, run_search
from autokd.search.arch.space import ArchSpaceSpec, load_space, validate_space

__all__ = [
    "PROXIES",
    "SPACE_FAMILIES",
    "ArchSearchError",
    "ArchSpaceSpec",
    "Candidate",
    "ProxyBatch",
    "SearchResult",
    "TeacherSignals",
    "available_proxies",
    "compute_proxy",
    "load_space",
    "register_proxy",
    "register_space_family",
    "run_arch_search",
    "run_search",
    "teacher_signals",
    "validate_space",
]
