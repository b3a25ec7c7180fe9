"""`Linear` schedule."""

from keras_trainplus import _export
from keras_trainplus.schedules._ramp import Ramp


@_export.register
class Linear(Ramp):
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

    _kind = "linear"
