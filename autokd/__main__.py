"""``python -m autokd`` runs the CLI (dvc.yaml uses it so a checkout runs its own code)."""

from autokd.cli import main

main()
