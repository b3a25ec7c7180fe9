"""`AugmentationKnob`: a knob of a keras_trainplus augmentation layer
(``"spec_augment.num_time_masks"``, ``"mix_up.alpha"``)."""

import keras

from keras_trainplus import _internals as internals
from keras_trainplus import _validation as v
from keras_trainplus.knobs.bound_knob import BoundKnob
from keras_trainplus.knobs.bound_knob import _like
from keras_trainplus.schedules.base_value import BaseValue


class AugmentationKnob(BoundKnob):
    """A knob of a keras_trainplus augmentation layer, e.g.
    ``"spec_augment.num_time_masks"`` or ``"mix_up.alpha"``."""

    def __init__(self, model, layer_name, knob, log_key=None):
        super().__init__(model)
        from keras_trainplus.layers._augmentation import AugmentationLayer

        self.log_key = log_key or f"{layer_name}.{knob}"
        layers = [
            layer
            for layer in internals.layers.iter_layers(model)
            if isinstance(layer, AugmentationLayer)
        ]
        match = [layer for layer in layers if layer.name == layer_name]
        if not match:
            raise ValueError(
                f"No keras_trainplus augmentation layer {layer_name!r} in "
                f"model {model.name!r} (target {self.log_key!r}). "
                f"Augmentation layers: {[layer.name for layer in layers]}"
            )
        self.layer = match[0]
        if knob not in self.layer.KNOBS:
            raise ValueError(
                f"Layer {layer_name!r} ({type(self.layer).__name__}) has no "
                f"knob {knob!r} (target {self.log_key!r}). Knobs: "
                f"{list(self.layer.KNOBS)}"
            )
        self.knob = knob
        self.variable = self.layer.knobs[knob]
        self._per_step = False
        self._uses_base = False
        self._last = None
        self._original = self.base()
        self._original_attribute = getattr(self.layer, knob)

    def value_keys(self):
        return [
            (
                ("knob", id(self.layer), self.knob),
                f"`{self.knob}` of layer {self.layer.name!r}",
            )
        ]

    def restore_original(self):
        self.variable.assign(self._original)
        setattr(self.layer, self.knob, self._original_attribute)
        self._last = None

    def check_value(self, target, value, argument):
        value = super().check_value(target, value, argument)
        if self.knob in self.layer._unit_knobs() and value > 1:
            v.fail(
                argument,
                value,
                f"in [0, 1] (`{self.knob}` of layer {self.layer.name!r})",
            )
        return value

    def mirror(self, value):
        """The layer's attribute (its config) follows the value; so does
        the knob when no base is read from it."""
        setattr(self.layer, self.knob, _like(self._original_attribute, value))
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

            def program(step, variable):
                return schedule.evaluate(step, base=variable)

            self.layer._set_program(self.knob, program)

    def epoch_begin(self, position):
        if self._per_step:
            internals.trainer.sync_jax_state(self.model)
            self.layer._trainplus_knobs.counter.reset(position)

    def set_base(self, value):
        internals.trainer.sync_jax_state(self.model)
        self.variable.assign(float(value))
        setattr(self.layer, self.knob, _like(self._original_attribute, value))

    def uninstall(self):
        self.layer._set_program(self.knob, None)
        if self._last is not None:
            # Stock again: the layer keeps the last value it used.
            self.variable.assign(self._last)
