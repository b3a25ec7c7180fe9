"""Targets: where a scheduled value goes and how it reaches the compiled step.

A target binds to a model at `on_train_begin` and then installs an in-graph
program (a function of the step), writes per-epoch base values into its
knob, reports host-side values for `logs`, and uninstalls at `on_train_end`.
`HyperparameterScheduler` is the one driver over them.

* learning_rate / lr: the knob is the optimizer's own LR variable; an LR
  program on the optimizer.
* momentum, beta_1, beta_2, weight_decay: a variable (hidden optimizer
  state on JAX); the attribute is substituted during the update.
* gradient_clip: a variable (+inf = off); clip after the cross-replica sum
  (TF).
* dropout, dropout:<layer>: a hidden variable per layer, read by the
  layer's `call`.
* <layer>.<knob>: the augmentation layer's knob (hidden state), read by
  the layer's `call`.

Every knob reaches the compiled step without retracing, on every backend
(on JAX the optimizer-side knobs are hidden optimizer state, see
`_KnobBinding`), and none changes what models and optimizers save.
"""

import math
import warnings

import keras
import numpy as np
from keras import ops

from keras_trainplus import _dropout
from keras_trainplus import _keras_hooks as hooks
from keras_trainplus import _validation as v
from keras_trainplus.knob import Knob
from keras_trainplus.schedules.base_value import BaseValue

# Optimizers whose update step reads `beta_1`/`beta_2` only arithmetically.
_BETA_OPTIMIZERS = (
    keras.optimizers.Adam,
    keras.optimizers.Adamax,
    keras.optimizers.Lamb,
    keras.optimizers.Lion,
)

CLIP_MODES = ("global_norm", "norm", "value")


def _iterations(optimizer):
    return int(keras.ops.convert_to_numpy(optimizer.iterations))


def _jax():
    return keras.backend.backend() == "jax"


class _Binding:
    """A target bound to one model."""

    log_key = None

    def __init__(self, model):
        self.model = model
        self.optimizers = hooks.optimizers_of(model.optimizer)

    def iterations(self):
        """Real updates applied (`optimizer.iterations`)."""
        return _iterations(self.optimizers[0])

    def accumulation(self):
        """Micro-batches per update (gradient accumulation, else 1)."""
        return hooks.accumulation_steps(self.optimizers[0])

    def micro_iterations(self):
        return hooks.micro_iterations(self.optimizers[0])

    def base(self):
        return None

    def install(self, schedule, offset):
        raise NotImplementedError

    def uninstall(self):
        raise NotImplementedError

    def epoch_begin(self, micro_step):
        """Called at every epoch start with the schedule's current step in
        micro-batches (its step times the accumulation, plus the phase)."""

    def value_keys(self):
        """``[(key, description)]`` of the values this target writes (one
        writer per value, see `_fit_guard`)."""
        return []

    def restore_original(self):
        """Puts back the values of before `fit` (after an exception)."""

    def own(self):
        """The value is owned outright from now on (before any callback of
        the `fit` writes it): another writer is an error."""

    def check_external_write(self, owner):
        """Raises if something else wrote a value this target owns."""

    def check_value(self, target, value, argument):
        """Checks a value of this target for `argument` (see
        `_validation.target_value`); returns it as a float."""
        return v.target_value(target, value, argument)

    def set_base(self, value):
        """Writes the per-epoch base value into the knob."""
        raise NotImplementedError

    def mirror(self, value):
        """Leaves `value` where Keras users look for it (config, attrs)."""


class LearningRateBinding(_Binding):
    """The learning rate; its knob is the optimizer's own LR variable."""

    def __init__(self, model, log_key="learning_rate"):
        super().__init__(model)
        self.log_key = log_key
        for opt in self.optimizers:
            if hooks.learning_rate_variable(opt) is None:
                raise ValueError(
                    f"The optimizer `{opt.name}` was created with a "
                    "learning-rate schedule "
                    f"({hooks.learning_rate_variable_or_schedule(opt)!r}), "
                    "so a keras_trainplus learning-rate callback cannot "
                    "drive it. Create the optimizer with a float "
                    "`learning_rate`, or pass the keras_trainplus schedule "
                    "to the optimizer directly."
                )
        self.knobs = [Knob.for_learning_rate(opt) for opt in self.optimizers]
        self._uses_base = False
        self._original = [float(knob) for knob in self.knobs]
        self._written = None  # what this target last wrote, read back

    def value_keys(self):
        return [(("learning_rate", id(opt)),
                 f"the learning rate of optimizer {opt.name!r}")
                for opt in self.optimizers]

    def base(self):
        return float(self.knobs[0])

    def install(self, schedule, offset):
        uses_base = schedule.uses_base()
        self._uses_base = uses_base
        if is_bare_base(schedule):
            return  # the optimizer reads its own variable: no program

        def program(step, lr_variable):
            base = lr_variable if uses_base else None
            return schedule.evaluate(step - offset, base=base)

        for opt in self.optimizers:
            hooks.set_learning_rate_program(opt, program,
                                            python_reads_base=uses_base)

    def uninstall(self):
        for opt in self.optimizers:
            hooks.set_learning_rate_program(opt, None)

    def set_base(self, value):
        for knob in self.knobs:
            knob.assign(value, model=self.model)
        self._written = float(self.knobs[0])

    def mirror(self, value):
        # With a base in the program the variable *is* the base: keep it.
        if not self._uses_base:
            self.set_base(value)

    def restore_original(self):
        for knob, value in zip(self.knobs, self._original):
            knob.assign(value, model=self.model)

    def own(self):
        self._written = self.base()

    def check_external_write(self, owner):
        if self._written is None:
            return
        current = float(self.knobs[0])
        if current == self._written or (current != current
                                        and self._written != self._written):
            return
        raise ValueError(
            f"The learning rate of optimizer {self.optimizers[0].name!r} "
            f"was changed to {current!r} by something other than {owner}, "
            f"which set it to {self._written!r} (e.g. Keras's "
            "`ReduceLROnPlateau` or `LearningRateScheduler`, or user code "
            "assigning `optimizer.learning_rate`). Two writers of one value "
            f"are an error: {owner} owns the learning rate. To combine a "
            "per-epoch writer with a per-step shape, schedule "
            "`schedules.BaseValue() * shape` (or pass `step_shape=`) and "
            "let the other callback write the base."
        )


class _KnobBinding(_Binding):
    """Shared logic of optimizer-side targets with a base knob.

    On TF and torch the knob is a plain variable read by the compiled step.
    On JAX only optimizer (and model) variables are inputs of the compiled
    step, so the knob is attached as hidden optimizer state: carried in the
    JAX train state, skipped by the optimizer's save and load.
    """

    allow_infinite = False

    def __init__(self, model):
        super().__init__(model)
        self.knob = None

    def initial_base(self):
        raise NotImplementedError

    def _make_program(self, schedule, offset):
        uses_base = schedule.uses_base()
        if uses_base:
            self.knob = Knob(self.initial_base(), name=f"{self.log_key}_knob",
                             model=self.model,
                             allow_infinite=self.allow_infinite)
            if _jax():
                for opt in self.optimizers:
                    hooks.attach_hidden_optimizer_state(opt,
                                                        self.knob.variable)

        def program(step):
            base = self.knob.variable if uses_base else None
            return schedule.evaluate(step - offset, base=base)

        return program

    def base(self):
        return float(self.knob) if self.knob is not None else \
            self.initial_base()

    def set_base(self, value):
        self.knob.assign(float(value), model=self.model)

    def _detach_knob(self):
        if self.knob is not None:
            for opt in self.optimizers:
                hooks.detach_hidden_optimizer_state(opt, self.knob.variable)


class OptimizerAttributeBinding(_KnobBinding):
    """An optimizer hyperparameter read at trace time (momentum, beta_1,
    beta_2, weight_decay)."""

    def __init__(self, model, name):
        super().__init__(model)
        self.log_key = name
        self.attrs = [self._attribute(opt, name) for opt in self.optimizers]
        self._original = [opt.__dict__.get(attr) for opt, attr in
                          zip(self.optimizers, self.attrs)]

    def value_keys(self):
        return [(("optimizer", id(opt), attr),
                 f"`{attr}` of optimizer {opt.name!r}")
                for opt, attr in zip(self.optimizers, self.attrs)]

    def restore_original(self):
        for opt, attr, value in zip(self.optimizers, self.attrs,
                                    self._original):
            opt.__dict__[attr] = value

    @staticmethod
    def _attribute(opt, name):
        is_sgd = isinstance(opt, keras.optimizers.SGD)
        is_beta = isinstance(opt, _BETA_OPTIMIZERS)
        if name == "weight_decay":
            return "weight_decay"
        if name == "momentum":
            attr = "momentum" if is_sgd else ("beta_1" if is_beta else None)
        elif name in ("beta_1", "beta_2"):
            attr = name if is_beta else None
        else:
            attr = None
        if attr is None:
            raise ValueError(
                f"Cannot schedule `{name}` on a `{type(opt).__name__}` "
                "optimizer. Momentum can be scheduled on SGD (its `momentum`)"
                " and on Adam, AdamW, Adamax, Lamb and Lion (their "
                "`beta_1`/`beta_2`). Use one of those optimizers, or turn "
                "momentum scheduling off (e.g. `cycle_momentum=False`)."
            )
        if is_sgd and not hooks.has_momentum_slots(opt):
            raise ValueError(
                "Cannot schedule momentum on `SGD(momentum=0.0)`: Keras "
                "creates no momentum slots for it, so momentum can never "
                "take effect. Create the optimizer as `SGD(momentum=0.9)` "
                "(any value > 0; the schedule overrides it), or turn "
                "momentum scheduling off (e.g. `cycle_momentum=False`)."
            )
        return attr

    def initial_base(self):
        return float(getattr(self.optimizers[0], self.attrs[0]) or 0.0)

    def install(self, schedule, offset):
        program = self._make_program(schedule, offset)
        for opt, attr in zip(self.optimizers, self.attrs):
            hooks.update_hyperparameter_programs(opt, {attr: program})

    def uninstall(self):
        for opt, attr in zip(self.optimizers, self.attrs):
            hooks.update_hyperparameter_programs(opt, {attr: None})
        self._detach_knob()

    def mirror(self, value):
        for opt, attr in zip(self.optimizers, self.attrs):
            opt.__dict__[attr] = float(value)


class GradientClipBinding(_KnobBinding):
    """A gradient-clipping threshold (+inf = no clipping), applied to the
    aggregated gradient."""

    allow_infinite = True

    def __init__(self, model, mode="global_norm", log_key="gradient_clip"):
        super().__init__(model)
        if mode not in CLIP_MODES:
            raise ValueError(f"Unknown clip mode {mode!r}; one of "
                             f"{CLIP_MODES}.")
        self.mode = mode
        self.log_key = log_key
        for opt in self.optimizers:
            own = {k: getattr(opt, k, None) for k in
                   ("clipnorm", "global_clipnorm", "clipvalue")}
            own = {k: v for k, v in own.items() if v}
            if own:
                warnings.warn(
                    f"The optimizer `{opt.name}` has its own clipping {own}; "
                    "while a keras_trainplus clip schedule is installed it "
                    "replaces it (and clips the aggregated gradient under "
                    "tf.distribute, which Keras's own clipping does not).",
                    stacklevel=4,
                )

    def initial_base(self):
        return math.inf

    def value_keys(self):
        return [(("gradient_clip", id(opt)),
                 f"the gradient clipping of optimizer {opt.name!r}")
                for opt in self.optimizers]

    def install(self, schedule, offset):
        threshold = self._make_program(schedule, offset)
        mode = self.mode

        def clip(grads, step):
            return clip_gradients(grads, threshold(step), mode)

        for opt in self.optimizers:
            hooks.set_gradient_clip_program(opt, clip)

    def uninstall(self):
        for opt in self.optimizers:
            hooks.set_gradient_clip_program(opt, None)
        self._detach_knob()


def clip_gradients(grads, threshold, mode):
    """Clips `grads` (a list, None entries allowed) at a tensor threshold."""
    present = [g for g in grads if g is not None]
    if not present:
        return grads
    if mode == "value":
        return [None if g is None else ops.clip(
            g, -ops.cast(threshold, g.dtype), ops.cast(threshold, g.dtype))
            for g in grads]
    if mode == "norm":
        out = []
        for g in grads:
            if g is None:
                out.append(None)
                continue
            norm = ops.sqrt(ops.sum(ops.square(ops.cast(g, "float32"))))
            out.append(g * ops.cast(_scale(norm, threshold), g.dtype))
        return out
    total = ops.sqrt(sum(ops.sum(ops.square(ops.cast(g, "float32")))
                         for g in present))
    scale = _scale(total, threshold)
    return [None if g is None else g * ops.cast(scale, g.dtype)
            for g in grads]


def _scale(norm, threshold):
    """thr / norm when norm > thr, else 1 (an infinite threshold, a zero or
    a NaN norm leave the gradient unchanged)."""
    threshold = ops.cast(threshold, "float32")
    exceeds = norm > threshold
    safe = ops.where(exceeds, norm, 1.0)
    return ops.where(exceeds, threshold / safe, 1.0)


class DropoutBinding(_Binding):
    """Dropout rates of stock (and keras_trainplus) dropout layers."""

    def __init__(self, model, layers=None, log_key="dropout_rate"):
        super().__init__(model)
        self.log_key = log_key
        self.layers = _dropout.dropout_layers(model, layers)
        if not self.layers:
            raise ValueError(
                f"Model {model.name!r} has no dropout layers to schedule "
                "(Dropout, SpatialDropout1D/2D/3D, GaussianDropout, "
                "AlphaDropout, keras_trainplus ScheduledDropout)."
            )
        self.controls = []
        self._offset = 0
        self._original = [float(layer.rate) for layer in self.layers]
        self._exact = None  # exact Python rates for the layers at the end

    def value_keys(self):
        return [(("dropout", id(layer)),
                 f"the dropout rate of layer {layer.name!r}")
                for layer in self.layers]

    def restore_original(self):
        for control, value in zip(self.controls, self._original):
            control.rate.assign(value)
            if not control.permanent:
                control.layer.rate = value
        self._exact = list(self._original)

    def base(self):
        if self.controls:
            return float(keras.ops.convert_to_numpy(self.controls[0].rate))
        return float(self.layers[0].rate)

    def install(self, schedule, offset):
        per_step = not isinstance(schedule, BaseValue)
        self._offset = offset
        self.controls = []
        for layer in self.layers:
            control = _dropout.control_for(layer, self.model,
                                           counter=per_step)
            if per_step:
                control.program = _rate_program(schedule,
                                                self.accumulation())
            self.controls.append(control)
            control.attach()

    def epoch_begin(self, step):
        for control in self.controls:
            if control.step is not None:
                control.step.assign(step)

    def set_base(self, value):
        value = _dropout.check_rate("dropout rate", value)
        hooks.sync_jax_state(self.model)
        for control in self.controls:
            control.rate.assign(value)

    def mirror(self, value):
        value = min(max(float(value), 0.0), 1.0)
        for control in self.controls:
            control.rate.assign(value)
            if not control.permanent:
                # Checkpoints written now (ModelCheckpoint) carry the
                # current rate in the stock layer's config.
                control.layer.rate = value
        self._exact = [value] * len(self.controls)

    def uninstall(self):
        exact = self._exact or [None] * len(self.controls)
        for control, rate in zip(self.controls, exact):
            control.detach(rate)
        self.controls = []


def _per_update(step, accumulation):
    """A forward-pass counter as the update index (one value per update
    under gradient accumulation)."""
    return step if accumulation == 1 else ops.floor_divide(step, accumulation)


def _rate_program(schedule, accumulation):
    def program(step, rate_variable):
        value = schedule.evaluate(_per_update(step, accumulation),
                                  base=rate_variable)
        return ops.clip(value, 0.0, 1.0)

    return program


class LayerKnobBinding(_Binding):
    """A knob of a keras_trainplus augmentation layer, e.g.
    ``"spec_augment.num_time_masks"`` or ``"mix_up.alpha"``."""

    def __init__(self, model, layer_name, knob):
        super().__init__(model)
        from keras_trainplus.layers._augmentation import AugmentationLayer

        self.log_key = f"{layer_name}.{knob}"
        layers = [layer for layer in hooks.iter_layers(model)
                  if isinstance(layer, AugmentationLayer)]
        match = [layer for layer in layers if layer.name == layer_name]
        if not match:
            raise ValueError(
                f"No keras_trainplus augmentation layer {layer_name!r} in "
                f"model {model.name!r} (target {self.log_key!r}). "
                f"Augmentation layers: {[layer.name for layer in layers]}")
        self.layer = match[0]
        if knob not in self.layer.KNOBS:
            raise ValueError(
                f"Layer {layer_name!r} ({type(self.layer).__name__}) has no "
                f"knob {knob!r} (target {self.log_key!r}). Knobs: "
                f"{list(self.layer.KNOBS)}")
        self.knob = knob
        self.variable = self.layer.knobs[knob]
        self._per_step = False
        self._uses_base = False
        self._last = None
        self._original = self.base()
        self._original_attribute = getattr(self.layer, knob)

    def value_keys(self):
        return [(("knob", id(self.layer), self.knob),
                 f"`{self.knob}` of layer {self.layer.name!r}")]

    def restore_original(self):
        self.variable.assign(self._original)
        setattr(self.layer, self.knob, self._original_attribute)
        self._last = None

    def check_value(self, target, value, argument):
        value = super().check_value(target, value, argument)
        if self.knob in self.layer._unit_knobs() and value > 1:
            v.fail(argument, value, f"in [0, 1] (`{self.knob}` of layer "
                   f"{self.layer.name!r})")
        return value

    def mirror(self, value):
        """The layer's attribute (its config) follows the value; so does
        the knob when no base is read from it."""
        setattr(self.layer, self.knob,
                _like(self._original_attribute, value))
        if not self._uses_base:
            self.variable.assign(float(value))
        self._last = float(value)

    def base(self):
        return float(keras.ops.convert_to_numpy(self.variable))

    def install(self, schedule, offset):
        self._per_step = not isinstance(schedule, BaseValue)
        self._uses_base = schedule.uses_base()
        if self._per_step:
            self.layer._use_counter(self.model)
            accumulation = self.accumulation()

            def program(step, variable):
                return schedule.evaluate(_per_update(step, accumulation),
                                         base=variable)

            self.layer._set_program(self.knob, program)

    def epoch_begin(self, step):
        if self._per_step:
            hooks.sync_jax_state(self.model)
            self.layer._trainplus_knobs.step.assign(step)

    def set_base(self, value):
        hooks.sync_jax_state(self.model)
        self.variable.assign(float(value))
        setattr(self.layer, self.knob,
                _like(self._original_attribute, value))

    def uninstall(self):
        self.layer._set_program(self.knob, None)
        if self._last is not None:
            # Stock again: the layer keeps the last value it used.
            self.variable.assign(self._last)


def _like(original, value):
    """`value` with the type of the attribute it replaces (an integer
    count stays an integer)."""
    if isinstance(original, int) and not isinstance(original, bool):
        return int(round(float(value)))
    return float(value)


def is_bare_base(schedule):
    """A schedule that is just the base value (`BaseValue()` or a
    `PerEpoch` leaf): the knob itself, no program needed."""
    from keras_trainplus.schedules.per_epoch import PerEpoch

    return isinstance(schedule, (BaseValue, PerEpoch))


_TARGETS = {
    "learning_rate": lambda model, **kw: LearningRateBinding(model, **kw),
    "lr": lambda model, **kw: LearningRateBinding(model, log_key="lr"),
    "momentum": lambda model, **kw: OptimizerAttributeBinding(model,
                                                              "momentum"),
    "beta_1": lambda model, **kw: OptimizerAttributeBinding(model, "beta_1"),
    "beta_2": lambda model, **kw: OptimizerAttributeBinding(model, "beta_2"),
    "weight_decay": lambda model, **kw: OptimizerAttributeBinding(
        model, "weight_decay"),
    "gradient_clip": lambda model, **kw: GradientClipBinding(model, **kw),
    "dropout": lambda model, **kw: DropoutBinding(model, **kw),
}


def target_names():
    return sorted(_TARGETS) + ["dropout:<layer name>",
                                "<augmentation layer name>.<knob>"]


def check_target_name(name):
    if not isinstance(name, str):
        raise ValueError(f"A hyperparameter target must be a string. "
                         f"Received: {name!r}")
    if name.startswith("dropout:") and len(name) > len("dropout:"):
        return name
    layer, dot, knob = name.rpartition(".")
    if dot and layer and knob:
        return name
    if name not in _TARGETS:
        raise ValueError(
            f"Unknown hyperparameter target {name!r}. Known targets: "
            f"{', '.join(repr(n) for n in target_names())}."
        )
    return name


def bind(name, model, **options):
    check_target_name(name)
    if name.startswith("dropout:"):
        layer = name[len("dropout:"):]
        return DropoutBinding(model, layers=[layer],
                              log_key=f"dropout_rate:{layer}")
    if "." in name:
        layer, _, knob = name.rpartition(".")
        return LayerKnobBinding(model, layer, knob)
    return _TARGETS[name](model, **options)


def host_value(schedule, step, base):
    return float(schedule.evaluate(np.int64(step), base=base))
