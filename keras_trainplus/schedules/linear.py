"""`Linear` schedule."""

from keras_trainplus import _export
from keras_trainplus import _math
from keras_trainplus import _validation as v
from keras_trainplus.schedules.schedule import Schedule


@_export.register
class Linear(Schedule):
    """Linear interpolation from `start_value` to `end_value`, then held.

    ```
    a = clip(step, 0, duration)
    value = (start_value * (duration - a) + end_value * a) / duration
    ```

    Used for linear warmup (``Linear(0.0, peak, warmup_steps)``) and linear
    decay (BERT: ``Linear(peak, 0.0, decay_steps)``). The value reaches
    `end_value` exactly at ``step == duration`` and stays there.

    Args:
        start_value: float. Value at step 0.
        end_value: float. Value from step `duration` on.
        duration: int >= 1. Number of steps of the ramp.

    Example:

    >>> s = Linear(0.0, 1.0, duration=4)
    >>> [float(s(i)) for i in range(6)]
    [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]

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
        return _math.anneal(m, "linear", self.start_value, self.end_value,
                            m.float(a), lambda: m.float(d - a), d)

    def get_config(self):
        return {
            "start_value": self.start_value,
            "end_value": self.end_value,
            "duration": self.duration,
        }
