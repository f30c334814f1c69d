"""Training: the one loop every healing and replacement module uses (`loop`: AdamW, fp32 master weights,
the schedules, the cost meter), re-exported here so `bench.train.train` names the loop. Imports only
`bench.core`.
"""

from bench.train.loop import (
    SCHEDULES,
    TrainParams,
    flops_per_token,
    fp32_master,
    lm_loss,
    lr_lambda,
    matmul_params,
    only_trainable,
    train,
    unique,
)

__all__ = ["TrainParams", "flops_per_token", "matmul_params", "only_trainable", "fp32_master", "unique", "lr_lambda", "train", "lm_loss", "SCHEDULES"]
