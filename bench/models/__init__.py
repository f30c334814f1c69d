"""Models: the architecture adapter and its surgery (`arch`, `sublayer`, `layercall`), the zoo of families
and their hash-pinned weights (`zoo`, `convert`, `precheck`), memory reach (`offload`) and the stock
checkpoint a pruned model is written as (`export`, `export_target`). Imports only `bench.core`.
"""
