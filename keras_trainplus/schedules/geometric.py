"""`Geometric` schedule."""

from keras_trainplus import _export
from keras_trainplus.schedules._ramp import Ramp


@_export.register
class Geometric(Ramp):
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

    _kind = "geometric"
    _positive = True
