"""Which process may write files under distributed training."""

import json
import os

import keras


def is_chief():
    """True for the one process that writes files (state files, plots).

    TF: the `chief`/`master` task, or worker 0 when the cluster has no chief
    (TF_CONFIG). JAX: process 0. torch.distributed: rank 0. Single-process
    training is always the chief.
    """
    tf_config = os.environ.get("TF_CONFIG")
    if tf_config:
        try:
            config = json.loads(tf_config)
        except ValueError:
            config = {}
        task = config.get("task") or {}
        cluster = config.get("cluster") or {}
        kind, index = task.get("type"), int(task.get("index", 0) or 0)
        if kind in ("chief", "master"):
            return True
        if kind == "worker":
            return index == 0 and not (cluster.get("chief")
                                       or cluster.get("master"))
        if kind in ("ps", "evaluator"):
            return False
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return jax.process_index() == 0
    if backend == "torch":
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return dist.get_rank() == 0
    return True
