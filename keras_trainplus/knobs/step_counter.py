"""`StepCounter`: an in-graph count of a layer's training calls."""

import keras
from keras import ops

from keras_trainplus import _internals as internals
from keras_trainplus.knobs.knob import _strategy_scope


class StepCounter:
    """Counts a layer's training calls inside the compiled step.

    A forward pass cannot read ``optimizer.iterations`` on JAX (the layer
    only sees its own state), so a per-step schedule computed in a layer
    (a dropout rate, an augmentation knob) steps this counter instead. The
    driver sets it to the schedule's step (in micro-batches) at every epoch
    start; under gradient accumulation the knob divides it by the number of
    micro-batches per update. Like a `Knob`, it lives in the model's
    strategy scope and rides as hidden layer state (`attach`): carried by
    the JAX train state, absent from saved files.

    Args:
        name: str. Variable name.
        model: optional model whose `tf.distribute` scope it is created in.
    """

    def __init__(self, name, model=None):
        with _strategy_scope(model):
            self.variable = keras.Variable(
                0,
                dtype="int32",
                trainable=False,
                name=name,
                aggregation="only_first_replica",
            )

    def next(self):
        """In the compiled step: the count so far, then one more."""
        # A snapshot: on TF and torch `variable.value` aliases the live
        # storage, which the increment below would change.
        step = ops.copy(self.variable.value)
        self.variable.assign(step + 1)
        return step

    def reset(self, value):
        """From the host: the count the next training call sees."""
        self.variable.assign(int(value))

    def attach(self, layer):
        internals.layers.attach_hidden_state(layer, self.variable)
        return self

    def detach(self, layer):
        internals.layers.detach_hidden_state(layer, self.variable)
