"""Running a matrix: the spec (`config`, `presets`, `plugins`), the cells and their keys (`cells`), the
prune pipeline plan -> apply -> heal (`pipeline`), one model's evaluation session (`session`), the runner and
its Slurm face (`runner`, `slurm`), the cell's provenance (`provenance`) and the dry-run plan (`estimate`).
"""
