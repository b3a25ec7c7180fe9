"""`DropoutRateKnob`: the rates of stock (and keras_trainplus) dropout
layers, read by the layers' `call` in the compiled step."""

import keras
from keras import ops

from keras_trainplus import _internals as internals
from keras_trainplus.knobs import _dropout_control as _dropout
from keras_trainplus.knobs.bound_knob import BoundKnob
from keras_trainplus.schedules.base_value import BaseValue


class DropoutRateKnob(BoundKnob):
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
        return [
            (
                ("dropout", id(layer)),
                f"the dropout rate of layer {layer.name!r}",
            )
            for layer in self.layers
        ]

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
            control = _dropout.control_for(layer, self.model, counter=per_step)
            if per_step:
                control.program = _rate_program(schedule)
            self.controls.append(control)
            control.attach()

    def epoch_begin(self, position):
        for control in self.controls:
            if control.counter is not None:
                control.counter.reset(position)

    def set_base(self, value):
        value = _dropout.check_rate("dropout rate", value)
        internals.trainer.sync_jax_state(self.model)
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


def _rate_program(schedule):
    def program(step, rate_variable):
        value = schedule.evaluate(step, base=rate_variable)
        return ops.clip(value, 0.0, 1.0)

    return program
