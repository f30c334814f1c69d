"""Measurement scripts (`python -m scripts.benchmarks.<name>`, from the repository root): ratios measured in
one run, interleaved."""
