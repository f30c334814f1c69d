"""Evaluation: accuracy (lm-eval), stability vs the dense model, corpus perplexity, latency and sizes.

Import the submodules directly (`bench.evaluate.accuracy`, ...); this package imports nothing heavy.
"""
