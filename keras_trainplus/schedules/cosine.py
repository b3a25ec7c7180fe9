"""`Cosine` schedule."""

from keras_trainplus import _export
from keras_trainplus import _math
from keras_trainplus import _validation as v
from keras_trainplus.schedules.schedule import Schedule


@_export.register
class Cosine(Schedule):
    """Half-cosine annealing from `start_value` to `end_value`, then held.

    ```
    p = clip(step, 0, duration) / duration
    value = end_value + (start_value - end_value) * (1 + cos(pi * p)) / 2
    ```

    Computed without cancellation near the end, so a decay to 0 keeps full
    relative precision on its last steps.

    Args:
        start_value: float. Value at step 0.
        end_value: float. Value from step `duration` on.
        duration: int >= 1. Number of steps of the anneal.

    Example:

    >>> s = Cosine(1.0, 0.0, duration=2)
    >>> [round(float(s(i)), 12) for i in range(4)]
    [1.0, 0.5, 0.0, 0.0]

    Raises:
        ValueError: for non-finite values or a `duration` below 1.
    """

    def __init__(self, start_value, end_value, duration):
        self.start_value = v.real("start_value", start_value)
        self.end_value = v.real("end_value", end_value)
        self.duration = v.integer("duration", duration, minimum=1)

    def _compute(self, m, step, base):
        d = self.duration
        a = m.clip(step, 0, d)
        return _math.anneal(m, "cos", self.start_value, self.end_value,
                            m.float(a), lambda: m.float(d - a), float(d))

    def get_config(self):
        return {
            "start_value": self.start_value,
            "end_value": self.end_value,
            "duration": self.duration,
        }
