"""Evaluation data: hash-pinned fetch from package registries, local loaders, lm-eval task wiring."""
