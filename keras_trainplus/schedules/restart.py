"""`Restart` schedule."""

from keras_trainplus import _export
from keras_trainplus import _validation as v
from keras_trainplus.schedules.schedule import Schedule
from keras_trainplus.schedules.schedule import as_schedule


@_export.register
class Restart(Schedule):
    """Restarts a schedule every `period` steps (warm restarts, SGDR).

    ``value = schedule(step mod period)``, computed in integer arithmetic.
    For restarts at irregular steps use `Join` with the same schedule
    repeated.

    Args:
        schedule: the schedule to repeat.
        period: int >= 1.

    Example:

    >>> from keras_trainplus import schedules as S
    >>> s = S.Restart(S.Linear(1.0, 0.0, 4), period=4)
    >>> [float(s(i)) for i in range(6)]
    [1.0, 0.75, 0.5, 0.25, 1.0, 0.75]

    Raises:
        ValueError: if `period` < 1.
    """

    def __init__(self, schedule, period):
        self.schedule = as_schedule(schedule, "schedule")
        self.period = v.integer("period", period, minimum=1)

    def children(self):
        return [self.schedule]

    def _compute(self, m, step, base):
        s = m.maximum(step, 0)
        local = s - m.floordiv(s, self.period) * self.period
        return self.schedule._compute(m, local, base)

    def get_config(self):
        return {
            "schedule": _export.serialize(self.schedule),
            "period": self.period,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["schedule"] = _export.deserialize(config["schedule"])
        return cls(**config)
