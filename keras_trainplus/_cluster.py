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
            return index == 0 and not (
                cluster.get("chief") or cluster.get("master")
            )
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


KERAS_19246 = "https://github.com/keras-team/keras/issues/19246"


def check_strategy_support(model, who):
    """Raises a clear error where stock Keras fails obscurely.

    Measured on Keras 3.15 / TF 2.21: `fit` under `MirroredStrategy` with
    more than one replica and ``steps_per_execution > 1`` dies at the first
    step with "You must feed a value for placeholder tensor ..."
    (keras-team/keras#19246), with or without keras_trainplus.
    """
    if keras.backend.backend() != "tensorflow":
        return
    import tensorflow as tf

    strategy = getattr(model, "distribute_strategy", None)
    spe = int(getattr(model, "steps_per_execution", 1) or 1)
    if (
        isinstance(strategy, tf.distribute.MirroredStrategy)
        and strategy.num_replicas_in_sync > 1
        and spe > 1
    ):
        raise ValueError(
            f"{who}: stock Keras `fit` fails under MirroredStrategy with "
            f"{strategy.num_replicas_in_sync} replicas and "
            f"steps_per_execution={spe} (an obscure 'You must feed a value "
            f"for placeholder tensor' error; {KERAS_19246}). Compile with "
            "steps_per_execution=1 under MirroredStrategy; keras_trainplus "
            "schedules are exact per step either way."
        )
