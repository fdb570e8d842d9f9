"""Searches: hyperparameters (Ray Tune + Optuna) and student architectures (training-free).

Imports nothing heavy at package import time: the CLI mounts the commands lazily.
"""
