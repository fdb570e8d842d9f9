"""``autokd report``: one self-contained HTML page of a project's pipeline, comparisons, searches and lineage."""
