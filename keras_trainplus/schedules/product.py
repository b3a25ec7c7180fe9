"""`Product` schedule."""

from keras_trainplus import _export
from keras_trainplus import _validation as v
from keras_trainplus.schedules.schedule import Schedule
from keras_trainplus.schedules.schedule import as_schedule
from keras_trainplus.schedules.schedule import deserialize_schedules
from keras_trainplus.schedules.schedule import serialize_schedules


@_export.register
class Product(Schedule):
    """The product of several schedules (``a * b`` builds one).

    This is how a per-epoch base value (`PerEpoch`, `BaseValue`, e.g. newbob's
    learning rate) is combined with a per-step shape such as a warmup, the
    way RETURNN's ``dynamic_learning_rate`` scales the controller's rate.

    Args:
        schedules: list of schedules (or numbers, taken as constants).

    Example:

    >>> from keras_trainplus import schedules as S
    >>> s = S.Linear(0.0, 1.0, 10) * 0.5
    >>> float(s(5))
    0.25

    Raises:
        ValueError: if `schedules` is empty or holds something else.
    """

    def __init__(self, schedules):
        expected = "a non-empty list of schedules or numbers"
        schedules = [
            as_schedule(s, f"schedules[{i}]")
            for i, s in enumerate(v.sequence("schedules", schedules, expected))
        ]
        if not schedules:
            v.fail("schedules", schedules, expected)
        self.schedules = schedules

    def children(self):
        return list(self.schedules)

    def _compute(self, m, step, base):
        out = self.schedules[0]._compute(m, step, base)
        for s in self.schedules[1:]:
            out = out * s._compute(m, step, base)
        return out

    def __mul__(self, other):
        return Product(self.schedules + [as_schedule(other, "other")])

    __rmul__ = __mul__

    def get_config(self):
        return {"schedules": serialize_schedules(self.schedules)}

    @classmethod
    def from_config(cls, config):
        return cls(deserialize_schedules(config["schedules"]))
