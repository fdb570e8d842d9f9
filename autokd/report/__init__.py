"""``autokd report``: one self-contained HTML page of a project's pipeline, comparisons, searches and lineage.

    from autokd.report import build_report, write_report
    path, report = write_report(".")            # reports/report.html
    report.available                            # the sections whose inputs were found

The page makes no network request (inline CSS, a small inline script, images as data: URIs,
the lineage graph as inline SVG). Layer: beside ``autokd.stages``; reads files only.
"""

from autokd.report.page import DEFAULT_OUT, SECTION_KEYS, Report, build_report, write_report

__all__ = ["DEFAULT_OUT", "SECTION_KEYS", "Report", "build_report", "write_report"]
