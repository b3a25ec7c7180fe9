"""`OptimizerAttributeKnob`: an optimizer hyperparameter the update step
reads at trace time (momentum, beta_1, beta_2, weight_decay)."""

import keras

from keras_trainplus import _internals as internals
from keras_trainplus.knobs.optimizer_side import OptimizerSideKnob

# Optimizers whose update step reads `beta_1`/`beta_2` only arithmetically.
_BETA_OPTIMIZERS = (
    keras.optimizers.Adam,
    keras.optimizers.Adamax,
    keras.optimizers.Lamb,
    keras.optimizers.Lion,
)


class OptimizerAttributeKnob(OptimizerSideKnob):
    """An optimizer hyperparameter read at trace time (momentum, beta_1,
    beta_2, weight_decay)."""

    def __init__(self, model, name, log_key=None):
        super().__init__(model)
        self.log_key = log_key or name
        self.attrs = [self._attribute(opt, name) for opt in self.optimizers]
        self._original = [
            internals.optimizer_update.instance_attribute(opt, attr)
            for opt, attr in zip(self.optimizers, self.attrs)
        ]

    def value_keys(self):
        return [
            (
                ("optimizer", id(opt), attr),
                f"`{attr}` of optimizer {opt.name!r}",
            )
            for opt, attr in zip(self.optimizers, self.attrs)
        ]

    def restore_original(self):
        for opt, attr, value in zip(
            self.optimizers, self.attrs, self._original
        ):
            internals.optimizer_update.set_instance_attribute(opt, attr, value)

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
        if is_sgd and not internals.optimizer_update.has_momentum_slots(opt):
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
            internals.optimizer_update.update_hyperparameter_programs(
                opt, {attr: program}
            )

    def uninstall(self):
        for opt, attr in zip(self.optimizers, self.attrs):
            internals.optimizer_update.update_hyperparameter_programs(
                opt, {attr: None}
            )
        self._detach_knob()

    def mirror(self, value):
        for opt, attr in zip(self.optimizers, self.attrs):
            internals.optimizer_update.set_instance_attribute(
                opt, attr, float(value)
            )
