"""Targets: where a scheduled value goes and how it reaches the compiled step.

A target binds to a model at `on_train_begin` and then installs an in-graph
program (a function of ``optimizer.iterations``), writes per-epoch base
values into its knob, reports host-side values for `logs`, and uninstalls at
`on_train_end`. `HyperparameterScheduler` is the one driver over them.
"""

import keras
import numpy as np

from keras_trainplus import _keras_hooks as hooks
from keras_trainplus.knob import Knob

# Optimizers whose update step reads `beta_1` only arithmetically.
_BETA_1_OPTIMIZERS = (
    keras.optimizers.Adam,
    keras.optimizers.Adamax,
    keras.optimizers.Lamb,
    keras.optimizers.Lion,
)


def _iterations(optimizer):
    return int(keras.ops.convert_to_numpy(optimizer.iterations))


class _Binding:
    """A target bound to one model."""

    log_key = None
    supports_base = False

    def __init__(self, model):
        self.model = model
        self.optimizers = hooks.optimizers_of(model.optimizer)

    def iterations(self):
        return _iterations(self.optimizers[0])

    def base(self):
        return None

    def install(self, schedule, offset):
        raise NotImplementedError

    def uninstall(self):
        raise NotImplementedError

    def set_base(self, value):
        raise NotImplementedError

    def mirror(self, value):
        """Leaves `value` where Keras users look for it (config, attrs)."""
        raise NotImplementedError


class LearningRateBinding(_Binding):
    """The learning rate; its knob is the optimizer's own LR variable."""

    log_key = "learning_rate"
    supports_base = True

    def __init__(self, model, log_key="learning_rate"):
        super().__init__(model)
        self.log_key = log_key
        for opt in self.optimizers:
            if hooks.learning_rate_variable(opt) is None:
                raise ValueError(
                    f"The optimizer `{opt.name}` was created with a "
                    "learning-rate schedule "
                    f"({opt._learning_rate!r}), so a keras_trainplus "
                    "learning-rate callback cannot drive it. Create the "
                    "optimizer with a float `learning_rate`, or pass the "
                    "keras_trainplus schedule to the optimizer directly."
                )
        self.knobs = [Knob.for_learning_rate(opt) for opt in self.optimizers]
        self._uses_base = False

    def base(self):
        return float(self.knobs[0])

    def install(self, schedule, offset):
        uses_base = schedule.uses_base()
        self._uses_base = uses_base

        def program(step, lr_variable):
            base = lr_variable if uses_base else None
            return schedule.evaluate(step - offset, base=base)

        for opt in self.optimizers:
            hooks.set_learning_rate_program(opt, program)

    def uninstall(self):
        for opt in self.optimizers:
            hooks.set_learning_rate_program(opt, None)

    def set_base(self, value):
        for knob in self.knobs:
            knob.assign(value, model=self.model)

    def mirror(self, value):
        # With a base in the program the variable *is* the base: keep it.
        if not self._uses_base:
            self.set_base(value)


class OptimizerAttributeBinding(_Binding):
    """An optimizer hyperparameter read at trace time (momentum, beta_1)."""

    def __init__(self, model, name):
        super().__init__(model)
        self.log_key = name
        self.attrs = [self._attribute(opt, name) for opt in self.optimizers]

    @staticmethod
    def _attribute(opt, name):
        is_sgd = isinstance(opt, keras.optimizers.SGD)
        is_beta = isinstance(opt, _BETA_1_OPTIMIZERS)
        if name == "momentum":
            attr = "momentum" if is_sgd else ("beta_1" if is_beta else None)
        elif name == "beta_1":
            attr = "beta_1" if is_beta else None
        else:
            attr = None
        if attr is None:
            raise ValueError(
                f"Cannot schedule `{name}` on a `{type(opt).__name__}` "
                "optimizer. Momentum can be scheduled on SGD (its `momentum`)"
                " and on Adam, AdamW, Adamax, Lamb and Lion (their "
                "`beta_1`). Use one of those optimizers, or turn momentum "
                "scheduling off (e.g. `cycle_momentum=False`)."
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

    def install(self, schedule, offset):
        if schedule.uses_base():
            raise ValueError(
                f"`{self.log_key}` can only follow a per-step schedule; "
                "`BaseValue`/`PerEpoch` leaves are supported for the "
                "learning rate."
            )

        def program(step):
            return schedule.evaluate(step - offset)

        for opt, attr in zip(self.optimizers, self.attrs):
            hooks.update_hyperparameter_programs(opt, {attr: program})

    def uninstall(self):
        for opt, attr in zip(self.optimizers, self.attrs):
            hooks.update_hyperparameter_programs(opt, {attr: None})

    def mirror(self, value):
        for opt, attr in zip(self.optimizers, self.attrs):
            opt.__dict__[attr] = float(value)


_TARGETS = {
    "learning_rate": lambda model: LearningRateBinding(model),
    "lr": lambda model: LearningRateBinding(model, log_key="lr"),
    "momentum": lambda model: OptimizerAttributeBinding(model, "momentum"),
    "beta_1": lambda model: OptimizerAttributeBinding(model, "beta_1"),
}


def target_names():
    return sorted(_TARGETS)


def check_target_name(name):
    if name not in _TARGETS:
        raise ValueError(
            f"Unknown hyperparameter target {name!r}. Known targets: "
            f"{', '.join(repr(n) for n in target_names())}."
        )
    return name


def bind(name, model):
    return _TARGETS[check_target_name(name)](model)


def host_value(schedule, step, base):
    return float(schedule.evaluate(np.int64(step), base=base))
