"""`LRMultiplierKnob`: a factor on the learning rate of one layer's
trainable variables (0 freezes them)."""

import keras

from keras_trainplus import _internals as internals
from keras_trainplus.knobs import _frozen_batch_norm as frozen_bn
from keras_trainplus.knobs.bound_knob import host_value
from keras_trainplus.knobs.optimizer_side import OptimizerSideKnob
from keras_trainplus.schedules.constant import Constant

PREFIX = "lr_multiplier:"

_INSTALLED = {}  # id(layer) -> the multiplier knobs installed on it


class LRMultiplierKnob(OptimizerSideKnob):
    """The learning-rate multiplier of one layer (target
    ``"lr_multiplier:<layer name>"``).

    Every update of the layer's trainable variables uses the learning rate
    times the multiplier (weight decay too); 0 freezes the variables, their
    optimizer slots and BatchNormalization statistics below the layer
    (`_internals/layerwise.py`, `knobs/_frozen_batch_norm.py`). Several
    multipliers of one variable (two callbacks, a model and a layer inside
    it) multiply.
    """

    def __init__(self, model, layer, log_key=None):
        super().__init__(model)
        self.layer = find_layer(model, layer)
        self.log_key = log_key or f"{PREFIX}{self.layer.name}"
        self.variables = list(self.layer.trainable_variables)
        self._schedule = None
        self._offset = 0
        self._norms = []

    def initial_base(self):
        return 1.0

    def knob_name(self):
        return f"{self.layer.name}_lr_multiplier"

    def install(self, schedule, offset):
        self._schedule, self._offset = schedule, offset
        program = self._make_program(schedule, offset)
        freezable = not (isinstance(schedule, Constant) and schedule.value > 0)
        for opt in self.optimizers:
            internals.layerwise.set_lr_multiplier(
                opt, self, self.variables, program, freezable
            )
        _INSTALLED.setdefault(id(self.layer), []).append(self)
        if freezable:
            self._norms = [
                frozen_bn.acquire(layer, self.model, self)
                for layer in frozen_bn.batch_norm_layers(self.layer)
            ]

    def epoch_begin(self, position):
        if not self._norms:
            return
        base = self.base() if self._schedule.uses_base() else None
        frozen = host_value(self._schedule, position.step, base) == 0.0
        for norm in self._norms:
            norm.set(self, frozen)

    def logged(self, value):
        """The multiplier the layer's last update used: `value` times the
        other multipliers installed on this layer (another callback's), so
        every writer logs the same effective value."""
        for other in _INSTALLED.get(id(self.layer), []):
            if other is not self:
                value *= other.last_value()
        return value

    def last_value(self):
        step = max(self.iterations() - self._offset - 1, 0)
        base = self.base() if self._schedule.uses_base() else None
        return host_value(self._schedule, step, base)

    def uninstall(self):
        mine = _INSTALLED.get(id(self.layer), [])
        mine[:] = [k for k in mine if k is not self]
        if not mine:
            _INSTALLED.pop(id(self.layer), None)
        for opt in self.optimizers:
            internals.layerwise.set_lr_multiplier(opt, self, None, None)
        for norm in self._norms:
            norm.release(self)
        self._norms = []
        self._detach_knob()


def find_layer(model, layer, argument=None):
    """The layer of `model` (nested models included) named `layer`, or
    `layer` itself if it is one of them.

    Raises:
        ValueError: naming the layer (and `argument`) if the model has no
            such layer, or several of that name.
    """
    below = internals.layers.iter_layers(model)
    if isinstance(layer, keras.layers.Layer):
        if any(x is layer for x in below):
            return layer
        name, found = layer.name, []
    else:
        name = layer
        found = [x for x in below if x.name == layer]
    where = f" (in `{argument}`)" if argument else ""
    if len(found) == 1:
        return found[0]
    if not found:
        raise ValueError(
            f"Model {model.name!r} has no layer {name!r}{where}. Layers: "
            f"{[x.name for x in below]}"
        )
    raise ValueError(
        f"Model {model.name!r} has {len(found)} layers named {name!r}"
        f"{where}: pass the layer object instead."
    )


def trainable_layers(model):
    """The layers with trainable weights, from input to output:
    `model.layers` order, nested models flattened into their layers (a
    layer the user set ``trainable=False`` has no trainable weights)."""
    out = []

    def visit(layer):
        if isinstance(layer, keras.Model):
            for inner in layer.layers:
                visit(inner)
        elif layer.trainable_weights and not any(x is layer for x in out):
            out.append(layer)

    for layer in model.layers:
        visit(layer)
    return out
