"""`Geometric` schedule."""

import math

from keras_trainplus import _export
from keras_trainplus import _validation as v
from keras_trainplus.schedules.schedule import Schedule


@_export.register
class Geometric(Schedule):
    """Exponential (log-linear) interpolation, then held.

    ```
    a = clip(step, 0, duration)
    value = start_value * (end_value / start_value) ** (a / duration)
    ```

    Used for exponential warmup and for the learning-rate range test. Both
    values must be positive.

    Args:
        start_value: float > 0. Value at step 0.
        end_value: float > 0. Value from step `duration` on.
        duration: int >= 1. Number of steps of the ramp.

    Example:

    >>> s = Geometric(1e-4, 1e-2, duration=2)
    >>> [round(float(s(i)), 12) for i in range(3)]
    [0.0001, 0.001, 0.01]

    Raises:
        ValueError: for non-positive values or a `duration` below 1.
    """

    def __init__(self, start_value, end_value, duration):
        self.start_value = v.positive("start_value", start_value)
        self.end_value = v.positive("end_value", end_value)
        self.duration = v.integer("duration", duration, minimum=1)

    def _compute(self, m, step, base):
        a = m.float(m.clip(step, 0, self.duration))
        log_ratio = math.log(self.end_value / self.start_value)
        return self.start_value * m.exp(a * (log_ratio / self.duration))

    def get_config(self):
        return {
            "start_value": self.start_value,
            "end_value": self.end_value,
            "duration": self.duration,
        }
