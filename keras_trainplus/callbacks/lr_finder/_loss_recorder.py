"""The LR finder's in-graph loss recorder (a metric)."""

import keras
import numpy as np
from keras import ops


class LossRecorder(keras.metrics.Metric):
    """Writes every update's own loss into a buffer, inside the compiled
    step. Attached as a model metric so that its variables travel with the
    JAX train state; under tf.distribute each replica adds its share of the
    loss (`aggregation="sum"`), so reading it gives the global loss. With
    gradient accumulation (`accumulation` micro-batches per update) entry
    ``i`` is the mean loss of update ``i``'s micro-batches."""

    def __init__(self, size, accumulation=1, phase=0):
        super().__init__(name="keras_trainplus_lr_finder")
        self.size = int(size)
        self.accumulation = int(accumulation)
        self.phase = int(phase)  # micro-batches accumulated before the test
        self.losses = self.add_variable(
            shape=(self.size,),
            initializer="zeros",
            aggregation="sum",
            name="losses",
        )
        self.count = self.add_variable(
            shape=(),
            dtype="int32",
            initializer="zeros",
            aggregation="only_first_replica",
            name="count",
        )

    def record(self, loss):
        count = ops.copy(self.count.value)
        k = self.accumulation
        index = count if k == 1 else ops.floor_divide(count + self.phase, k)
        hit = ops.equal(ops.arange(self.size, dtype="int32"), index)
        loss = ops.cast(ops.reshape(loss, ()), self.losses.dtype)
        if k == 1:
            new = ops.where(hit, loss, self.losses.value)
        else:
            new = ops.where(
                hit, self.losses.value + loss / k, self.losses.value
            )
        self.losses.assign(new)
        self.count.assign(count + 1)

    def update_state(self, *args, **kwargs):
        """Unused: `record` is called from the wrapped `compute_loss`."""

    def result(self):
        return {}  # nothing in the logs

    def reset_state(self):
        """Kept across the per-epoch metric reset of `fit`."""

    def read(self):
        count = (
            int(ops.convert_to_numpy(self.count)) + self.phase
        ) // self.accumulation
        return min(count, self.size), self.read_losses()

    def read_losses(self):
        return np.array(ops.convert_to_numpy(self.losses), np.float64)
