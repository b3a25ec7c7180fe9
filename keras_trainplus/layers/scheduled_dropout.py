"""`ScheduledDropout`: dropout whose rate lives in a variable."""

import keras

from keras_trainplus import _export
from keras_trainplus import _internals as internals
from keras_trainplus.knobs import _dropout_control as _dropout


@_export.register
class ScheduledDropout(keras.layers.Dropout):
    """Dropout with a variable-backed rate that can change during training.

    Identical to `keras.layers.Dropout` (same arguments, config and saved
    weights: none), except that the rate is read from a variable inside the
    compiled step, so `set_rate` and `keras_trainplus.callbacks.
    DropoutScheduler` take effect without retracing, on every backend, under
    XLA and under `tf.distribute`. It also works when created with rate 0.
    The variable is layer state, like a seed generator: it is part of the
    JAX train state but not of the weights, so checkpoints of models with
    `ScheduledDropout` and with stock `Dropout` are interchangeable. The
    rate in the config is the initial one.

    `DropoutScheduler` works on stock dropout layers too; this layer is for
    new models that want to set rates directly.

    Args:
        rate: float in [0, 1]. Initial fraction of units to drop.
        noise_shape: as in `keras.layers.Dropout`.
        seed: int, random seed.
        **kwargs: base layer arguments.

    Call arguments:
        inputs: input tensor.
        training: bool. Dropout is applied only when training.

    Example:

    >>> layer = ScheduledDropout(0.5)
    >>> layer.set_rate(0.0)
    >>> float(layer.current_rate)
    0.0

    Raises:
        ValueError: for a rate outside [0, 1].
    """

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        rate = _dropout.check_rate("rate", rate)
        super().__init__(rate, noise_shape=noise_shape, seed=seed, **kwargs)
        self._trainplus_control = _dropout.DropoutControl(self, permanent=True)
        self._trainplus_control.knob.attach(self)
        internals.layers.attach_hidden_state(
            self, self._trainplus_control.seed.state
        )

    @property
    def rate_variable(self):
        """The variable the compiled step reads."""
        return self._trainplus_control.rate

    @property
    def current_rate(self):
        return float(keras.ops.convert_to_numpy(self.rate_variable))

    def set_rate(self, rate):
        """Sets the rate (from the host, e.g. in a callback)."""
        self.rate_variable.assign(_dropout.check_rate("rate", rate))

    def call(self, inputs, training=False):
        return self._trainplus_control.call(inputs, training=training)
