"""`LRMultiplierKnob`: a factor on the learning rate of one layer's
trainable variables (0 freezes them)."""

import warnings

import keras

from keras_trainplus import _internals as internals
from keras_trainplus.knobs import _frozen_batch_norm as frozen_bn
from keras_trainplus.knobs.bound_knob import host_value
from keras_trainplus.knobs.bound_knob import is_bare_base
from keras_trainplus.knobs.optimizer_side import OptimizerSideKnob
from keras_trainplus.schedules.constant import Constant

PREFIX = "lr_multiplier:"

_INSTALLED = []  # the multiplier knobs installed now (every driver)


class LRMultiplierKnob(OptimizerSideKnob):
    """The learning-rate multiplier of one layer (target
    ``"lr_multiplier:<layer name or path>"``).

    Every update of the layer's trainable variables uses the learning rate
    times the multiplier (weight decay too); 0 freezes the variables, their
    optimizer slots and BatchNormalization statistics below the layer
    (`_internals/layerwise.py`, `knobs/_frozen_batch_norm.py`). Several
    multipliers of one variable (two callbacks, a model and a layer inside
    it) multiply. Presets pass the `layer` object itself, and `own_only`
    for a nested model's own weights (not its layers').
    """

    def __init__(self, model, name, log_key=None, layer=None, own_only=False):
        super().__init__(model)
        self.layer = find_layer(model, name if layer is None else layer)
        self.log_key = log_key or f"{PREFIX}{name}"
        self.own_only = own_only
        self.variables = own_variables(self.layer, own_only)
        if not self.variables:
            warnings.warn(
                f"The layer {self.layer.name!r} has no trainable weights: "
                f"its learning-rate multiplier ({self.log_key!r}) has no "
                "effect.",
                stacklevel=4,
            )
        self._schedule = None
        self._offset = 0
        self._norms = []
        self._host_base = None  # torch, per-epoch values: the host's copy

    def base(self):
        if self._host_base is not None:
            return self._host_base
        return super().base()

    def initial_base(self):
        return 1.0

    def knob_name(self):
        return f"{self.layer.name}_lr_multiplier"

    def install(self, schedule, offset):
        self._schedule, self._offset = schedule, offset
        constant = isinstance(schedule, Constant)
        if constant:  # no step arithmetic in the compiled step

            def program(step):
                return schedule.value

        elif is_bare_base(schedule) and keras.backend.backend() == "torch":
            # Eager torch runs the program on the host at every update: the
            # per-epoch value written last is a Python number there.
            self._host_base = self.initial_base()

            def program(step):
                return self._host_base

        else:
            program = self._make_program(schedule, offset)
        freezable = not (constant and schedule.value > 0)
        for opt in self.optimizers:
            internals.layerwise.set_lr_multiplier(
                opt, self, self.variables, program, freezable
            )
        _INSTALLED.append(self)
        if freezable and not self.own_only:
            self._norms = [
                frozen_bn.acquire(layer, self.model, self)
                for layer in frozen_bn.batch_norm_layers(self.layer)
            ]

    def set_base(self, value):
        if self._host_base is not None:
            self._host_base = float(value)
        if self.knob is not None:
            super().set_base(value)

    def epoch_begin(self, position):
        if not self._norms:
            return
        base = self.base() if self._schedule.uses_base() else None
        frozen = host_value(self._schedule, position.step, base) == 0.0
        for norm in self._norms:
            norm.set(self, frozen)

    def logged(self, value):
        """The multiplier the layer's last update used: `value` times the
        other multipliers installed on all of its variables (another
        callback's, or one of a model the layer is part of)."""
        mine = {id(v) for v in self.variables}
        for other in _INSTALLED:
            if other is not self and mine:
                if mine <= {id(v) for v in other.variables}:
                    value *= other.last_value()
        return value

    def last_value(self):
        step = max(self.iterations() - self._offset - 1, 0)
        base = self.base() if self._schedule.uses_base() else None
        return host_value(self._schedule, step, base)

    def uninstall(self):
        _INSTALLED[:] = [k for k in _INSTALLED if k is not self]
        for opt in self.optimizers:
            internals.layerwise.set_lr_multiplier(opt, self, None, None)
        for norm in self._norms:
            norm.release(self)
        self._norms = []
        self._host_base = None
        self._detach_knob()


def find_layer(model, layer, argument=None):
    """The layer of `model` (nested models included) named `layer`, at the
    path `layer` (``"tower/fc"``, for names used twice), or `layer` itself
    if it is one of them.

    Raises:
        ValueError: naming the layer (and `argument`) if the model has no
            such layer, or several of that name.
    """
    below = internals.layers.iter_layers(model)
    where = f" (in `{argument}`)" if argument else ""
    if isinstance(layer, keras.layers.Layer):
        if any(x is layer for x in below):
            return layer
        raise ValueError(
            f"The layer object {layer.name!r}{where} is not part of model "
            f"{model.name!r} (a layer of the same name in it is another "
            "object)."
        )
    paths = internals.layers.layer_paths(model)
    found = [x for x in below if x.name == layer]
    if len(found) != 1:
        by_path = [x for x in below if paths.get(id(x)) == layer]
        found = by_path or found
    if len(found) == 1:
        return found[0]
    if not found:
        raise ValueError(
            f"Model {model.name!r} has no layer {layer!r}{where}. Layers: "
            f"{[paths.get(id(x), x.name) for x in below]}"
        )
    paths = [paths.get(id(x), x.name) for x in found]
    raise ValueError(
        f"Model {model.name!r} has {len(found)} layers named {layer!r}"
        f"{where}: give the path ({', '.join(map(repr, paths))}) or the "
        "layer object."
    )


def label(model, layer):
    """How targets and logs name `layer`: its name, or its path when
    another layer of `model` has the same name."""
    below = internals.layers.iter_layers(model)
    if sum(x.name == layer.name for x in below) > 1:
        return internals.layers.layer_paths(model).get(id(layer), layer.name)
    return layer.name


def config_name(layer):
    """How a config names a layer given as an object: its path (a layer
    named like another one inside a nested model stays unambiguous;
    `find_layer` takes paths); a string as is."""
    if isinstance(layer, keras.layers.Layer):
        return getattr(layer, "path", None) or layer.name
    return layer


def own_variables(layer, own_only=False):
    """The trainable variables of `layer`; with `own_only`, of a nested
    model without those of its layers."""
    variables = list(layer.trainable_variables)
    if not own_only:
        return variables
    inner = {
        id(v)
        for x in internals.layers.iter_layers(layer)
        for v in x.trainable_variables
    }
    return [v for v in variables if id(v) not in inner]


def trainable_layers(model):
    """The layers with trainable weights, from input to output:
    `model.layers` order, nested models flattened into their layers (a
    layer the user set ``trainable=False`` has no trainable weights). A
    nested model that owns weights itself (``add_weight`` in a subclassed
    model) follows its layers, standing for those weights only."""
    out = []

    def visit(layer):
        if any(x is layer for x in out):
            return
        if isinstance(layer, keras.Model):
            for inner in layer.layers:
                visit(inner)
            if own_variables(layer, own_only=True):
                out.append(layer)
        elif layer.trainable_weights:
            out.append(layer)

    for layer in model.layers:
        visit(layer)
    return out
