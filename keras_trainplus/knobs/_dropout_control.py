"""Variable-backed dropout rates for stock and keras_trainplus layers.

Stock Keras dropout layers read `self.rate` (a Python float) when the train
step is traced, so assigning `layer.rate` later changes nothing. A
`DropoutControl` gives one layer:

* a rate knob (a scalar variable),
* optionally a step counter (for per-step schedules; a forward pass cannot
  see `optimizer.iterations` on JAX),
* a seed generator (a stock `Dropout(0.0)` has none),

all attached as hidden layer state: part of the layer's `variables` (so the
JAX trainer carries and updates them) but not of its `weights` or of saved
files, which stay exactly as with the stock layer. The layer's `call` is
replaced (on the instance) by one that reads the knob inside the compiled
step and draws one uniform (or normal) number per unit, as Keras does.
"""

import keras
from keras import ops

from keras_trainplus import _internals as internals
from keras_trainplus import _validation as v
from keras_trainplus.knobs.knob import Knob
from keras_trainplus.knobs.knob import _strategy_scope
from keras_trainplus.knobs.step_counter import StepCounter

_ALPHA = 1.6732632423543772848170429916717
_SCALE = 1.0507009873554804934193349852946


def kind_of(layer):
    """ "dropout", "spatial", "gaussian", "alpha" or None."""
    L = keras.layers
    if isinstance(layer, L.GaussianDropout):
        return "gaussian"
    if isinstance(layer, L.AlphaDropout):
        return "alpha"
    if isinstance(
        layer, (L.SpatialDropout1D, L.SpatialDropout2D, L.SpatialDropout3D)
    ):
        return "spatial"
    if isinstance(layer, L.Dropout):
        return "dropout"
    return None


def dropout_layers(model, names=None):
    """The dropout-like layers of `model` (recursively), optionally by name
    or by layer object."""
    found = [
        layer for layer in internals.layers.iter_layers(model) if kind_of(layer)
    ]
    if names is None:
        return found
    out = []
    for want in names:
        if isinstance(want, keras.layers.Layer):
            match = [layer for layer in found if layer is want]
        else:
            match = [layer for layer in found if layer.name == want]
        if not match:
            raise ValueError(
                f"No dropout layer {getattr(want, 'name', want)!r} in model "
                f"{model.name!r}. Dropout layers: "
                f"{[layer.name for layer in found]}"
            )
        out.extend(match)
    return out


class DropoutControl:
    """Knob, counter and seed of one dropout layer (see module doc)."""

    def __init__(self, layer, model=None, counter=False, permanent=False):
        self.layer = layer
        self.permanent = permanent
        self.kind = kind_of(layer)
        self.knob = Knob(
            float(layer.rate), name=f"{layer.name}_scheduled_rate", model=model
        )
        self.rate = self.knob.variable
        self.counter = (
            StepCounter(f"{layer.name}_schedule_step", model)
            if counter
            else None
        )
        with _strategy_scope(model):
            self.seed = getattr(layer, "seed_generator", None)
            self.own_seed = self.seed is None
            if self.own_seed:
                self.seed = keras.random.SeedGenerator(
                    getattr(layer, "seed", None)
                )
        self.program = None  # fn(step_tensor, rate_variable) -> rate
        self._model = model

    def use_counter(self):
        """Adds the step counter (for per-step schedules), once."""
        if self.counter is None:
            self.counter = StepCounter(
                f"{self.layer.name}_schedule_step", self._model
            ).attach(self.layer)

    # -- attach / detach ----------------------------------------------------

    def attach(self):
        if self.permanent:
            return
        self.knob.attach(self.layer)
        if self.counter is not None:
            self.counter.attach(self.layer)
        if self.own_seed:
            internals.layers.attach_hidden_state(self.layer, self.seed.state)
        internals.layers.set_layer_call(self.layer, self.call)

    def detach(self, rate=None):
        """Restores the stock layer, with `rate` set to `rate` (the exact
        Python value; default: the knob's value, float32).

        A layer created with rate 0 (which has no seed generator) and raised
        since keeps the seed generator as a regular one. A permanent control
        (a `ScheduledDropout` layer's own) only drops its program.
        """
        self.program = None
        if self.permanent:
            return
        internals.layers.set_layer_call(self.layer, None)
        self.knob.detach(self.layer)
        if self.counter is not None:
            self.counter.detach(self.layer)
        if rate is None:
            rate = float(self.knob)
        self.layer.rate = rate
        if self.own_seed:
            if rate > 0:
                # The stock call now needs `self.seed_generator`. Keras does
                # not let a built layer track new state, so the seed stays
                # hidden state (advanced in the JAX train state, not saved)
                # and is exposed as a plain attribute.
                internals.layers.set_untracked_attribute(
                    self.layer, "seed_generator", self.seed
                )
            else:
                internals.layers.detach_hidden_state(
                    self.layer, self.seed.state
                )

    # -- compiled-step side ---------------------------------------------------

    def current_rate(self):
        if self.program is None:
            return self.rate.value
        step = None if self.counter is None else self.counter.next()
        return self.program(step, self.rate)

    def call(self, inputs, training=False):
        if not training:
            return inputs
        return apply(
            self.kind, self.layer, inputs, self.current_rate(), self.seed
        )


def control_for(layer, model, counter):
    """The control of `layer`: its own (ScheduledDropout) or a new one."""
    control = getattr(layer, "_trainplus_control", None)
    if control is None:
        control = DropoutControl(layer, model, counter=counter)
    elif counter:
        control.use_counter()
    return control


def apply(kind, layer, inputs, rate, seed):
    """Training-mode output of a dropout layer of `kind` at a tensor `rate`."""
    dtype = inputs.dtype
    rate = ops.cast(rate, "float32")
    if kind == "gaussian":
        safe = ops.minimum(rate, 1.0 - 1e-7)
        stddev = ops.sqrt(safe / (1.0 - safe))
        noise = keras.random.normal(ops.shape(inputs), seed=seed)
        return inputs * ops.cast(1.0 + noise * stddev, dtype)
    shape = _noise_shape(kind, layer, inputs)
    keep = keras.random.uniform(shape, seed=seed) >= rate
    if kind == "alpha":
        alpha_p = -_ALPHA * _SCALE
        a = ((1.0 - rate) * (1.0 + rate * alpha_p**2)) ** -0.5
        b = -a * alpha_p * rate
        kept = ops.cast(keep, dtype)
        x = inputs * kept + ops.cast(alpha_p, dtype) * (1 - kept)
        return ops.cast(a, dtype) * x + ops.cast(b, dtype)
    scale = ops.where(rate < 1.0, 1.0 / ops.maximum(1.0 - rate, 1e-12), 0.0)
    return inputs * (ops.cast(keep, dtype) * ops.cast(scale, dtype))


def _noise_shape(kind, layer, inputs):
    if kind == "spatial":
        return internals.layers.spatial_noise_shape(layer, inputs)
    noise_shape = getattr(layer, "noise_shape", None)
    if noise_shape is None:
        return ops.shape(inputs)
    shape = ops.shape(inputs)
    return tuple(
        shape[i] if d is None else d for i, d in enumerate(noise_shape)
    )


def check_rate(name, rate):
    return v.real(name, rate, minimum=0, maximum=1, what="a dropout rate")
