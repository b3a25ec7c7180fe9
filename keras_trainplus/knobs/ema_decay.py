"""`EMADecayKnob`: the decay of the model's `WeightEMA`, read by its
in-graph update."""

from keras_trainplus.knobs import _weight_ema
from keras_trainplus.knobs.bound_knob import BoundKnob
from keras_trainplus.knobs.bound_knob import is_bare_base


class EMADecayKnob(BoundKnob):
    """The decay of the `WeightEMA` of the same `fit` (the target
    ``"ema_decay"``).

    `WeightEMA(decay=...)` holds the base in a knob, as an optimizer holds
    its learning rate; a per-step schedule becomes the program its update
    reads at the index of the update (``BaseValue()`` reads `decay`). With
    `use_warmup`, the warmup is capped by this value. Logged: the decay of
    the epoch's last EMA update.
    """

    def __init__(self, model, log_key="ema_decay"):
        super().__init__(model)
        self.log_key = log_key
        self._original = None

    def _ema(self):
        ema = _weight_ema.active(self.model)
        if ema is None:
            raise ValueError(
                "The target 'ema_decay' schedules the decay of a "
                "`keras_trainplus.callbacks.WeightEMA`, but this `fit` has "
                "none. Add `WeightEMA(...)` to the callbacks."
            )
        return ema

    def value_keys(self):
        return [
            (
                ("ema_decay", id(self.model)),
                f"the EMA decay of model {self.model.name!r}",
            )
        ]

    def base(self):
        return float(self._ema().decay)

    def set_base(self, value):
        ema = self._ema()
        if self._original is None:
            self._original = float(ema.decay)
        ema.decay.assign(float(value), model=self.model)

    def restore_original(self):
        ema = _weight_ema.active(self.model)
        if ema is not None and self._original is not None:
            ema.decay.assign(self._original, model=self.model)

    def install(self, schedule, offset):
        ema = self._ema()
        if is_bare_base(schedule):
            ema.decay_from_knob = True  # the driver writes it per epoch
            return
        variable = ema.decay.variable

        def program(step):
            return schedule.evaluate(step - offset, base=variable)

        ema.decay_program = program

    def uninstall(self):
        ema = _weight_ema.active(self.model)
        if ema is not None:
            ema.decay_program = None

    def logged(self, value):
        ema = _weight_ema.active(self.model)
        return value if ema is None else ema.last_decay_value()
