"""`WeightNoiseKnob`: Gaussian noise of a scheduled standard deviation on
the kernels a layer's training forward pass reads (RETURNN's
`param_variational_noise`; Graves, 2011, "Practical Variational Inference
for Neural Networks")."""

import random

import keras
from keras import ops

from keras_trainplus import _internals as internals
from keras_trainplus import _validation as v
from keras_trainplus.knobs.bound_knob import BoundKnob
from keras_trainplus.knobs.knob import Knob
from keras_trainplus.knobs.knob import _strategy_scope
from keras_trainplus.knobs.lr_multiplier import find_layer
from keras_trainplus.knobs.step_counter import StepCounter
from keras_trainplus.schedules.base_value import BaseValue


def kernels(layer):
    """The kernel variables a layer's call reads: its trainable float
    variables named ``*kernel`` (kernel, recurrent_kernel, depthwise and
    pointwise kernels), those of its sublayers (an RNN's cell) included."""
    return [
        w
        for w in layer.trainable_variables
        if w.name.endswith("kernel") and "float" in str(w.dtype)
    ]


def noisy_layers(model, names=None):
    """The layers whose calls get noise: the named ones, or the outermost
    layers (not models) that hold kernels, so an RNN draws once per call
    for its cell rather than once per time step."""
    if names is not None:
        out = []
        for name in names:
            layer = find_layer(model, name, "weight_noise")
            if not kernels(layer):
                raise ValueError(
                    f"Layer {layer.name!r} has no kernel variable for "
                    "`weight_noise` (trainable variables named '*kernel')."
                )
            out.append(layer)
        return out
    below = internals.layers.iter_layers(model)
    owners = [
        layer
        for layer in below
        if not isinstance(layer, keras.Model) and kernels(layer)
    ]
    inner = set()
    for layer in owners:
        inner.update(id(x) for x in internals.layers.iter_layers(layer))
    return [layer for layer in owners if id(layer) not in inner]


class WeightNoiseControl:
    """Noise std knob, step counter and seed of one layer; its `call`
    reads the kernels plus fresh noise in training forward passes."""

    def __init__(self, layer, model, seed, counter):
        self.layer = layer
        self.model = model
        self.knob = Knob(0.0, name=f"{layer.name}_weight_noise", model=model)
        self.counter = (
            StepCounter(f"{layer.name}_weight_noise_step", model)
            if counter
            else None
        )
        with _strategy_scope(model):
            self.seed = keras.random.SeedGenerator(seed)
        self.kernels = kernels(layer)
        self.program = None  # fn(step, knob variable) -> std
        self.previous = None

    def attach(self):
        self.knob.attach(self.layer)
        internals.layers.attach_hidden_state(self.layer, self.seed.state)
        if self.counter is not None:
            self.counter.attach(self.layer)
        self.previous = internals.layers.instance_call(self.layer)
        stock = self.previous or type(self.layer).call.__get__(self.layer)

        def call(*args, **kwargs):
            training = internals.layers.call_training()
            if training is None:  # a call nobody set `training` for
                training = internals.trainer.in_train_step(self.model)
            if not training:
                return stock(*args, **kwargs)
            with internals.layers.substituted_values(
                self.noisy_values(), self.layer.variables
            ):
                return stock(*args, **kwargs)

        internals.layers.set_layer_call(self.layer, call)

    def detach(self):
        internals.layers.set_layer_call(self.layer, self.previous)
        self.knob.detach(self.layer)
        internals.layers.detach_hidden_state(self.layer, self.seed.state)
        if self.counter is not None:
            self.counter.detach(self.layer)

    def noisy_values(self):
        if self.program is None:
            std = self.knob.variable.value
        else:
            std = self.program(self.counter.next(), self.knob.variable)
        std = ops.cast(std, "float32")
        out = []
        for w in self.kernels:
            value = w.value
            z = keras.random.normal(w.shape, seed=self.seed)
            out.append((w, value + ops.cast(std * z, value.dtype)))
        return out


class WeightNoiseKnob(BoundKnob):
    """The standard deviation of Gaussian noise added to every kernel
    element of the chosen layers in each training forward pass (a fresh
    draw per step, the same on every replica; never written to the
    weights; nothing at inference). 0 = off."""

    def __init__(self, model, layers=None, seed=None, log_key="weight_noise"):
        super().__init__(model)
        self.log_key = log_key
        self.seed = v.integer("seed", seed, allow_none=True)
        self.layers = noisy_layers(model, layers)
        if not self.layers:
            raise ValueError(
                f"Model {model.name!r} has no layer with a kernel for "
                "`weight_noise`."
            )
        self.controls = []

    def value_keys(self):
        return [
            (("weight_noise", id(w)), f"the weight noise of {w.path!r}")
            for layer in self.layers
            for w in kernels(layer)
        ]

    def base(self):
        if self.controls:
            return float(self.controls[0].knob)
        return 0.0

    def install(self, schedule, offset):
        per_step = not isinstance(schedule, BaseValue)
        seed = self.seed if self.seed is not None else random.randrange(1 << 30)
        self.controls = []
        # Marks the train step, for layer calls without a `training` flag.
        internals.trainer.set_post_update(self.model, _MARK, _nothing)
        for index, layer in enumerate(self.layers):
            control = WeightNoiseControl(
                layer, self.model, seed + 7919 * index, per_step
            )
            if per_step:
                control.program = _std_program(schedule)
            control.attach()
            self.controls.append(control)

    def epoch_begin(self, position):
        for control in self.controls:
            if control.counter is not None:
                control.counter.reset(position)

    def set_base(self, value):
        value = v.real("weight noise", value, minimum=0)
        internals.trainer.sync_jax_state(self.model)
        for control in self.controls:
            control.knob.assign(value)

    def uninstall(self):
        for control in self.controls:
            control.detach()
        self.controls = []
        internals.trainer.set_post_update(self.model, _MARK, None)


_MARK = "weight_noise"


def _nothing():
    pass


def _std_program(schedule):
    def program(step, variable):
        return ops.maximum(schedule.evaluate(step, base=variable), 0.0)

    return program
