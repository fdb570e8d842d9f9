"""Package data: the shipped pipeline specs and search spaces, the templates of ``autokd init``
(byte-equal to the repository's ``pipelines/`` and ``search_spaces/`` files, a test checks)."""
