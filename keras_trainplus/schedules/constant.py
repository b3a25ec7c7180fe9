"""`Constant` schedule."""

from keras_trainplus import _export
from keras_trainplus import _validation as v
from keras_trainplus.schedules.schedule import Schedule


@_export.register
class Constant(Schedule):
    """A constant value.

    Args:
        value: float. The value at every step; `math.inf` is allowed (e.g.
            a gradient clip threshold meaning "no clipping").

    Example:

    >>> float(Constant(0.1)(12345))
    0.1

    Raises:
        ValueError: if `value` is not a finite number or `math.inf`.
    """

    def __init__(self, value):
        self.value = v.real("value", value, allow_inf=True)

    def _compute(self, m, step, base):
        return m.float(self.value)

    def get_config(self):
        return {"value": self.value}
