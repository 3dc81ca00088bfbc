"""Experiment tracking: what the ``wandb`` and ``mlflow`` plugins share, and each of them."""
