"""`ExponentialDecay` schedule."""

import math

from keras_trainplus import _export
from keras_trainplus import _validation as v
from keras_trainplus.schedules.schedule import Schedule


@_export.register
class ExponentialDecay(Schedule):
    """Exponential decay, as `keras.optimizers.schedules.ExponentialDecay`.

    ```
    p = step / decay_steps            # floor(...) if staircase
    value = initial_value * decay_rate ** p
    ```

    Unlike the Keras version, the step is split into whole and partial decay
    periods in integer arithmetic, so the value stays exact at very large
    steps.

    Args:
        initial_value: float. Value at step 0.
        decay_rate: float > 0. Factor applied every `decay_steps` steps.
        decay_steps: int >= 1.
        staircase: bool. Decay in discrete jumps. Defaults to `False`.

    Example:

    >>> s = ExponentialDecay(1.0, 0.5, decay_steps=10)
    >>> [float(s(i)) for i in (0, 10, 20)]
    [1.0, 0.5, 0.25]

    Raises:
        ValueError: for a non-positive `decay_rate` or `decay_steps` < 1.
    """

    def __init__(self, initial_value, decay_rate, decay_steps, staircase=False):
        self.initial_value = v.real("initial_value", initial_value)
        self.decay_rate = v.positive("decay_rate", decay_rate)
        self.decay_steps = v.integer("decay_steps", decay_steps, minimum=1)
        self.staircase = v.boolean("staircase", staircase)

    def _compute(self, m, step, base):
        s = m.maximum(step, 0)
        q = m.floordiv(s, self.decay_steps)
        p = m.float(q)
        if not self.staircase:
            p = p + m.float(s - q * self.decay_steps) / self.decay_steps
        return self.initial_value * m.exp(p * math.log(self.decay_rate))

    def get_config(self):
        return {
            "initial_value": self.initial_value,
            "decay_rate": self.decay_rate,
            "decay_steps": self.decay_steps,
            "staircase": self.staircase,
        }
