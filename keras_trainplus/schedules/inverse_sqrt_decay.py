"""`InverseSqrtDecay` schedule."""

from keras_trainplus import _export
from keras_trainplus import _validation as v
from keras_trainplus.schedules.schedule import Schedule


@_export.register
class InverseSqrtDecay(Schedule):
    """Inverse square-root decay (the decay half of the Transformer schedule).

    ```
    value = initial_value * sqrt(timescale / (timescale + step))
    ```

    Joined after a linear warmup of ``w`` steps with ``timescale = w`` this is
    the "Noam" schedule of Vaswani et al. (2017); see
    `keras_trainplus.callbacks.WarmupDecayLR`.

    Args:
        initial_value: float. Value at step 0.
        timescale: int >= 1. Step count over which the value falls by
            ``1/sqrt(2)``.

    Example:

    >>> s = InverseSqrtDecay(1.0, timescale=100)
    >>> [float(s(i)) for i in (0, 300)]
    [1.0, 0.5]

    Raises:
        ValueError: if `timescale` < 1.
    """

    def __init__(self, initial_value, timescale):
        self.initial_value = v.real("initial_value", initial_value)
        self.timescale = v.integer("timescale", timescale, minimum=1)

    def _compute(self, m, step, base):
        t = self.timescale
        s = m.maximum(step, 0)
        return self.initial_value * m.sqrt(t / m.float(s + t))

    def get_config(self):
        return {
            "initial_value": self.initial_value,
            "timescale": self.timescale,
        }
