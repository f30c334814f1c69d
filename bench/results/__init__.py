"""Results: the store of cells (`store`), the rows a report or a comparison reads from it (`rows`), the
per-sample records recomputed from stored files (`recompute`) and the regression check against a baseline
(`regress`). Above the metrics (it reads records through their registry), below the run and the report.
"""
