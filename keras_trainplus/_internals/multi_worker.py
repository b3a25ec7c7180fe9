"""`MultiWorkerMirroredStrategy` internals: two module-level fixes of
stock `fit` on Keras 3.15 / TF 2.21 (see `patch_multi_worker_fit`)."""

import keras

from keras_trainplus._internals.version import hook
from keras_trainplus._internals.version import require

_MWMS_PATCHED = {}


@hook("3.15")
def patch_multi_worker_fit():
    """Fixes stock `fit()` under `MultiWorkerMirroredStrategy` (TF backend).

    Measured on Keras 3.15.1 / TF 2.21 (`../shared/specs/keras_internals.md`,
    tensorflow/tensorflow#72388):

    1. `_maybe_symbolic_build` averages the first distributed batch with
       ``strategy.reduce("MEAN", batch, axis=None)``, which fails for
       multi-worker `PerReplica` values. Building only needs shapes and
       dtypes: we build from the first local replica's batch instead.
    2. `reduce_per_replica` reduces every log with ``axis=0``, which fails
       for scalar logs under multi-worker collectives. We reduce scalars
       with ``axis=None`` (their mean over replicas).

    Both are no-ops for other strategies. Idempotent; returns True when
    the patches are active.
    """
    if keras.backend.backend() != "tensorflow":
        return False
    if _MWMS_PATCHED:
        return True
    from keras.src.backend.tensorflow import trainer as tf_trainer

    require(tf_trainer, "reduce_per_replica", "fix multi-worker fit")
    require(
        tf_trainer,
        "_collective_all_reduce_multi_worker",
        "fix multi-worker fit",
    )
    trainer_cls = tf_trainer.TensorFlowTrainer
    require(trainer_cls, "_maybe_symbolic_build", "fix multi-worker fit")
    original_build = trainer_cls._maybe_symbolic_build
    original_reduce = tf_trainer.reduce_per_replica

    maybe_symbolic_build = _symbolic_build_from_local_batch(
        original_build, tf_trainer
    )
    reduce_per_replica = _reduce_scalars_without_axis(
        original_reduce, tf_trainer
    )
    trainer_cls._maybe_symbolic_build = maybe_symbolic_build
    tf_trainer.reduce_per_replica = reduce_per_replica
    _MWMS_PATCHED.update(build=original_build, reduce=original_reduce)
    return True


def _is_multi_worker(strategy, tf_trainer):
    return strategy is not None and (
        tf_trainer._collective_all_reduce_multi_worker(strategy)
    )


def _symbolic_build_from_local_batch(original_build, tf_trainer):
    """Fix 1: build from the first local replica's batch."""
    import tensorflow as tf

    def maybe_symbolic_build(self, iterator=None, data_batch=None):
        strategy = self._distribute_strategy
        if iterator is None or not _is_multi_worker(strategy, tf_trainer):
            return original_build(
                self, iterator=iterator, data_batch=data_batch
            )
        for _, _, it in iterator:
            batch = next(it)
            data_batch = keras.tree.map_structure(
                lambda t: (
                    strategy.experimental_local_results(t)[0]
                    if isinstance(t, tf.distribute.DistributedValues)
                    else t
                ),
                batch,
            )
            break
        with strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    return maybe_symbolic_build


def _reduce_scalars_without_axis(original_reduce, tf_trainer):
    """Fix 2: scalar logs are reduced with ``axis=None``."""
    import tensorflow as tf

    def reduce_per_replica(values, strategy, reduction):
        if reduction not in ("auto", "mean") or not _is_multi_worker(
            strategy, tf_trainer
        ):
            return original_reduce(values, strategy, reduction)

        def reduce(v):
            local = (
                strategy.experimental_local_results(v)[0]
                if isinstance(v, tf.distribute.DistributedValues)
                else v
            )
            rank = getattr(getattr(local, "shape", None), "rank", None)
            return strategy.reduce("MEAN", v, axis=None if rank == 0 else 0)

        return keras.tree.map_structure(reduce, values)

    return reduce_per_replica
