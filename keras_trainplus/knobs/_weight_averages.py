"""`WeightAverages`: one average variable per float weight of a model, for
weight averaging (`WeightEMA`, `StochasticWeightAveraging`).

The averaged weights are ``model.weights`` of a float dtype: trainable
weights and non-trainable ones such as BatchNormalization's moving
statistics (timm's "buffers"), not RNG states or hidden knobs. Averages
updated in the compiled step are hidden optimizer state (the JAX train
state carries them; checkpoints keep the stock layout); averages updated
between epochs are plain variables the step never touches.
"""

import keras
from keras import ops

from keras_trainplus import _internals as internals
from keras_trainplus.knobs.knob import _strategy_scope


def averaged_weights(model):
    """The float weights of `model`, each once, in ``model.weights`` order."""
    out, seen = [], set()
    for weight in model.weights:
        if id(weight) in seen:
            continue
        seen.add(id(weight))
        dtype = keras.backend.standardize_dtype(weight.dtype)
        if dtype.startswith(("float", "bfloat")):
            out.append(weight)
    return out


class WeightAverages:
    """Averages of the float weights of `model`.

    Args:
        model: the model whose weights are averaged.
        name: suffix of the average variables' names.
        optimizer: None (plain variables, updated between epochs), or the
            optimizer that carries them as hidden state (updated in the
            compiled step).
    """

    def __init__(self, model, name, optimizer=None):
        self.model = model
        self.weights = averaged_weights(model)
        self.optimizer = optimizer
        if optimizer is None:
            self.averages = [
                keras.Variable(
                    ops.zeros(w.shape, w.dtype),
                    dtype=w.dtype,
                    trainable=False,
                    name=f"{w.name}_{name}",
                )
                for w in self.weights
            ]
            return
        with _strategy_scope(model):
            self.averages = [
                optimizer.add_variable_from_reference(w, name=name)
                for w in self.weights
            ]
        for average in self.averages:
            internals.optimizer.attach_hidden_optimizer_state(
                optimizer, average
            )

    def release(self):
        """Detaches in-graph averages from the optimizer (stock again)."""
        if self.optimizer is not None:
            for average in self.averages:
                internals.optimizer.detach_hidden_optimizer_state(
                    self.optimizer, average
                )

    def swap(self):
        """Exchanges the weights and the averages, exactly (swapping twice
        restores both bit for bit)."""
        for weight, average in zip(self.weights, self.averages):
            raw = ops.copy(weight.value)
            weight.assign(average.value)
            average.assign(raw)

    def copy_to_weights(self):
        for weight, average in zip(self.weights, self.averages):
            weight.assign(ops.copy(average.value))  # JAX: no shared buffer

    def numpy(self):
        return [ops.convert_to_numpy(a) for a in self.averages]

    def load(self, arrays, what):
        """Assigns saved averages (checked against the variables)."""
        if len(arrays) != len(self.averages):
            raise ValueError(
                f"The saved {what} has {len(arrays)} averages, but the model "
                f"has {len(self.averages)} float weights."
            )
        for average, array in zip(self.averages, arrays):
            if tuple(array.shape) != tuple(average.shape):
                raise ValueError(
                    f"The saved {what} holds an average of shape "
                    f"{tuple(array.shape)} for {average.name!r} of shape "
                    f"{tuple(average.shape)}."
                )
            average.assign(array)
