"""`Cosine` schedule."""

from keras_trainplus import _export
from keras_trainplus.schedules._ramp import Ramp


@_export.register
class Cosine(Ramp):
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

    _kind = "cos"
