"""`Join` schedule."""

from keras_trainplus import _export
from keras_trainplus import _validation as v
from keras_trainplus.schedules.schedule import Schedule
from keras_trainplus.schedules.schedule import as_schedule
from keras_trainplus.schedules.schedule import deserialize_schedules
from keras_trainplus.schedules.schedule import serialize_schedules
from keras_trainplus.schedules.step_decay import _increasing_ints


@_export.register
class Join(Schedule):
    """Runs schedules one after another, switching at `boundaries`.

    Schedule ``k`` is active for ``boundaries[k-1] <= step < boundaries[k]``
    and sees the step counted from its own start, ``step - boundaries[k-1]``
    (optax's ``join_schedules``). Joining a schedule with itself restarts it.

    Args:
        schedules: list of schedules (or numbers, taken as constants).
        boundaries: strictly increasing list of ints >= 1, one shorter than
            `schedules`.

    Example:

    >>> from keras_trainplus import schedules as S
    >>> s = S.Join([S.Linear(0.0, 1.0, 2), S.Cosine(1.0, 0.0, 2)], [2])
    >>> [round(float(s(i)), 12) for i in range(5)]
    [0.0, 0.5, 1.0, 0.5, 0.0]

    Raises:
        ValueError: for mismatched lengths or unordered boundaries.
    """

    def __init__(self, schedules, boundaries):
        given = schedules
        schedules = [
            as_schedule(s, f"schedules[{i}]")
            for i, s in enumerate(
                v.sequence(
                    "schedules", schedules, "a list of schedules or numbers"
                )
            )
        ]
        self.boundaries = _increasing_ints("boundaries", boundaries)
        if len(schedules) != len(self.boundaries) + 1:
            v.fail(
                "schedules",
                given,
                f"a list one longer than `boundaries` ({len(self.boundaries)})",
            )
        self.schedules = schedules

    def children(self):
        return list(self.schedules)

    def _compute(self, m, step, base):
        starts = [0] + self.boundaries
        out = self.schedules[-1]._compute(m, step - starts[-1], base)
        for k in range(len(self.boundaries) - 1, -1, -1):
            local = self.schedules[k]._compute(m, step - starts[k], base)
            out = m.where(step < self.boundaries[k], local, out)
        return out

    def get_config(self):
        return {
            "schedules": serialize_schedules(self.schedules),
            "boundaries": self.boundaries,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["schedules"] = deserialize_schedules(config["schedules"])
        return cls(**config)
