"""`Knob`: a scalar hyperparameter in a variable the compiled step reads."""

import keras
import numpy as np

from keras_trainplus import _internals as internals
from keras_trainplus import _validation as v


class Knob:
    """A scalar value that callbacks write and compiled train steps read.

    Python attributes such as `Dropout.rate`, `SGD.momentum` or
    `global_clipnorm` are baked into the train step when Keras traces it;
    changing them later is silently ignored. A knob holds the value in a
    non-trainable `keras.Variable` instead, so writes from a callback reach
    every later step without retracing.

    A free-standing ``Knob(value)`` works on TensorFlow (plain, XLA,
    `tf.distribute`) and torch; on JAX it must be tracked
    (`Knob.track(optimizer)`), or it is frozen when the step is traced.
    Where a knob's variable lives, distribution, saving:
    [docs/architecture.md](../docs/architecture.md#where-a-knob-lives).

    Args:
        value: float. Initial value (ignored when `variable` is given).
        name: str. Variable name. Defaults to `"knob"`.
        dtype: float dtype of the variable. Defaults to `"float32"`.
        variable: an existing scalar `keras.Variable` to wrap instead of
            creating one.
        model: optional model whose `tf.distribute` strategy scope the
            variable is created in.
        allow_infinite: bool. Accept `+inf` (e.g. "no clipping").
            Defaults to `False`.

    Example:

    >>> knob = Knob(0.5, name="rate")
    >>> knob.assign(0.25)
    >>> float(knob)
    0.25

    Raises:
        ValueError: for a non-scalar `variable`, a value that is not a
            finite number, or a `dtype` that is not a float dtype.
    """

    def __init__(
        self,
        value=0.0,
        name="knob",
        dtype="float32",
        variable=None,
        model=None,
        allow_infinite=False,
    ):
        self.allow_infinite = v.boolean("allow_infinite", allow_infinite)
        if variable is not None:
            if (
                not isinstance(variable, keras.Variable)
                or tuple(variable.shape) != ()
            ):
                v.fail_type("variable", variable, "a scalar `keras.Variable`")
            self.variable = variable
            self._program = None
            return
        value = _finite("value", value, allow_infinite)
        name = v.string("name", name)
        dtype = _float_dtype(dtype)
        with _strategy_scope(model):
            self.variable = keras.Variable(
                value,
                dtype=dtype,
                trainable=False,
                name=name,
                aggregation="only_first_replica",
            )
        self._program = None

    @classmethod
    def for_learning_rate(cls, optimizer):
        """Wraps the optimizer's own learning-rate variable.

        Raises:
            ValueError: if the optimizer was created with a
                `LearningRateSchedule` (it then has no variable).
        """
        opt = internals.optimizer.optimizers_of(optimizer)[0]
        var = internals.optimizer.learning_rate_variable(opt)
        if var is None:
            raise ValueError(
                f"The optimizer `{opt.name}` has a learning-rate schedule, "
                "not a variable. Received: learning_rate="
                f"{internals.optimizer.learning_rate_variable_or_schedule(opt)!r}"
            )
        return cls(variable=var)

    def assign(self, value, model=None):
        """Writes a new value (host side, e.g. from a callback).

        Args:
            value: float.
            model: the model being trained. On JAX, its in-flight train
                state is synced first, so the write is not overwritten at the
                end of the epoch.
        """
        value = _finite("value", value, self.allow_infinite)
        if model is not None:
            internals.trainer.sync_jax_state(model)
        self.variable.assign(value)

    def read(self):
        """The value as a tensor (use inside compiled code): the variable,
        or the in-graph program a driver installed (a per-step schedule)."""
        if self._program is not None:
            return keras.ops.cast(self._program(), self.variable.dtype)
        return self.variable.value

    def set_program(self, program):
        """Makes `read()` return ``program()`` (a function of in-graph
        values such as ``optimizer.iterations``); None removes it. The
        driver installs one for a per-step schedule of this knob."""
        self._program = program

    def numpy(self):
        return np.asarray(keras.ops.convert_to_numpy(self.variable))

    def __float__(self):
        return float(self.numpy())

    def attach(self, layer):
        """Carries the knob as hidden state of `layer`: part of its
        `variables` (so the JAX train state carries it), not of its
        weights or saved files. Returns the knob."""
        internals.layers.attach_hidden_state(layer, self.variable)
        return self

    def detach(self, layer):
        internals.layers.detach_hidden_state(layer, self.variable)

    def track(self, optimizer):
        """Makes the knob an optimizer variable, as JAX requires.

        This adds one variable to the optimizer's checkpoint layout.
        """
        for opt in internals.optimizer.optimizers_of(optimizer):
            internals.optimizer.track_optimizer_variable(opt, self.variable)
        return self

    def get_config(self):
        return {
            "value": float(self),
            "name": self.variable.name,
            "dtype": str(self.variable.dtype),
            "allow_infinite": self.allow_infinite,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"Knob({self.variable.name}={float(self)!r})"


def _finite(name, value, allow_infinite=False):
    return v.real(name, value, allow_inf=allow_infinite)


def _float_dtype(dtype):
    """A float dtype name (an int dtype would truncate the value)."""
    try:
        name = keras.backend.standardize_dtype(dtype)
    except (TypeError, ValueError, AttributeError):
        name = None
    if name is None or not name.startswith(("float", "bfloat")):
        v.fail_type("dtype", dtype, "a float dtype such as 'float32'")
    return name


class _NullScope:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _strategy_scope(model):
    if model is None or keras.backend.backend() != "tensorflow":
        return _NullScope()
    strategy = getattr(model, "distribute_strategy", None)
    if strategy is None:
        return _NullScope()
    import tensorflow as tf

    if tf.distribute.has_strategy():
        return _NullScope()
    return strategy.scope()
