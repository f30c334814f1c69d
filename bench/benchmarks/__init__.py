"""Measurement scripts (`python -m bench.benchmarks.<name>`): ratios measured in one run, interleaved."""
