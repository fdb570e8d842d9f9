"""Training-free student architecture search (DisWOT and zero-cost proxies).

``autokd search arch <space>`` scores every candidate student of a space at initialization
against the pipeline's teacher, ranks them, writes ``searches/<name>/ranking.{json,csv,md}``
and a ``shortlist.yaml`` of ``student.model`` specs; ``--validate N`` distills N of them to
measure how far the ranking can be trusted on this data.

Modules: :mod:`.space` (the YAML space and its candidates), :mod:`.proxies` (the proxy
registry), :mod:`.constraints`, :mod:`.context` (pipeline artifacts, batch, teacher),
:mod:`.search` (exhaustive, regularized evolution, combination), :mod:`.validate`,
:mod:`.report`.
"""

from autokd.search.arch.proxies import PROXIES, ProxyBatch, TeacherSignals, available_proxies, compute_proxy, \
    register_proxy, teacher_signals
from autokd.search.arch.search import SearchResult, run_arch_search, run_search
from autokd.search.arch.space import SPACE_FAMILIES, ArchSpaceSpec, Candidate, load_space, register_space_family, \
    validate_space

__all__ = [
    "PROXIES",
    "SPACE_FAMILIES",
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
