"""`StepCounter`: a layer's in-graph count of its training calls, as the
update index of the schedule."""

import keras
from keras import ops

from keras_trainplus import _internals as internals
from keras_trainplus.knobs.knob import _strategy_scope


class StepCounter:
    """The update index of a layer's training calls, in the compiled step.

    A forward pass cannot read ``optimizer.iterations`` on JAX (the layer
    only sees its own state), so a per-step schedule computed in a layer
    (a dropout rate, an augmentation knob) reads this counter instead. It
    holds three int32 numbers, ``[micro, base, factor]``: the training
    calls since the epoch started (plus the micro-batches already
    accumulated then), the schedule's step at that moment, and the
    micro-batches per update. A call's step is
    ``base + micro // factor``, so under gradient accumulation (Keras's or
    `GradientAccumulationScheduler`'s) the forward passes of one update
    share one value. The driver sets it at every epoch start (`reset`).
    Like a `Knob`, it lives in the model's strategy scope and rides as
    hidden layer state (`attach`): carried by the JAX train state, absent
    from saved files.

    Args:
        name: str. Variable name.
        model: optional model whose `tf.distribute` scope it is created in.
    """

    def __init__(self, name, model=None):
        with _strategy_scope(model):
            self.variable = keras.Variable(
                [0, 0, 1],
                dtype="int32",
                trainable=False,
                name=name,
                aggregation="only_first_replica",
            )

    def next(self):
        """In the compiled step: this call's update index, then one more
        call."""
        # A snapshot: on TF and torch `variable.value` aliases the live
        # storage, which the increment below would change.
        state = ops.copy(self.variable.value)
        self.variable.assign(state + ops.convert_to_tensor([1, 0, 0], "int32"))
        return state[1] + ops.floor_divide(state[0], state[2])

    def reset(self, position):
        """From the host: where the next training call is, a
        `SchedulePosition` (or an int: the update index, no accumulation)."""
        if isinstance(position, int):
            position = SchedulePosition(position)
        self.variable.assign(
            [int(position.phase), int(position.step), int(position.factor)]
        )

    def attach(self, layer):
        internals.layers.attach_hidden_state(layer, self.variable)
        return self

    def detach(self, layer):
        internals.layers.detach_hidden_state(layer, self.variable)


class SchedulePosition:
    """Where a `fit` is at an epoch start, for the layer counters.

    Args:
        step: the schedule's step of the next update.
        factor: micro-batches per update in this epoch. Defaults to 1.
        phase: micro-batches already accumulated toward that update
            (Keras's accumulation carries them across epochs). Defaults
            to 0.
        length: micro-batches in this epoch, or None (unknown).
    """

    def __init__(self, step, factor=1, phase=0, length=None):
        self.step = int(step)
        self.factor = int(factor)
        self.phase = int(phase)
        self.length = None if length is None else int(length)
