"""Shared base of the ramps `Linear`, `Cosine` and `Geometric`."""

from keras_trainplus import _validation as v
from keras_trainplus.schedules import _math
from keras_trainplus.schedules.schedule import Schedule


class Ramp(Schedule):
    """From `start_value` at step 0 to `end_value` at step `duration`, held
    after; subclasses choose the curve (`_kind`) and value checks."""

    _kind = None
    _positive = False

    def __init__(self, start_value, end_value, duration):
        check = v.positive if self._positive else v.real
        self.start_value = check("start_value", start_value)
        self.end_value = check("end_value", end_value)
        self.duration = v.integer("duration", duration, minimum=1)

    def _compute(self, m, step, base):
        d = self.duration
        a = m.clip(step, 0, d)
        return _math.anneal(
            m,
            self._kind,
            self.start_value,
            self.end_value,
            m.float(a),
            lambda: m.float(d - a),
            float(d),
        )

    def get_config(self):
        return {
            "start_value": self.start_value,
            "end_value": self.end_value,
            "duration": self.duration,
        }
