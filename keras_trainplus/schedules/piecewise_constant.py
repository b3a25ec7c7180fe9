"""`PiecewiseConstant` schedule."""

from keras_trainplus import _export
from keras_trainplus import _validation as v
from keras_trainplus.schedules.schedule import Schedule
from keras_trainplus.schedules.step_decay import _increasing_ints


@_export.register
class PiecewiseConstant(Schedule):
    """Piecewise constant: ``values[k]`` from step ``boundaries[k-1]`` on.

    ``values[0]`` is used for steps ``< boundaries[0]``, ``values[k]`` for
    ``boundaries[k-1] <= step < boundaries[k]``. (Keras's
    `PiecewiseConstantDecay` switches one step later, at ``step >
    boundary``; here a boundary is the first step of the new value.)

    Args:
        boundaries: strictly increasing list of ints >= 1.
        values: list of floats, one longer than `boundaries`.

    Example:

    >>> s = PiecewiseConstant([10, 20], [1.0, 0.5, 0.1])
    >>> [float(s(i)) for i in (0, 9, 10, 20, 99)]
    [1.0, 1.0, 0.5, 0.1, 0.1]
    >>> s = PiecewiseConstant.from_dict({0: 1.0, 10: 0.5})
    >>> float(s(10))
    0.5

    Raises:
        ValueError: for mismatched lengths or unordered boundaries.
    """

    def __init__(self, boundaries, values):
        self.boundaries = _increasing_ints("boundaries", boundaries)
        values = v.sequence("values", values, "a list of numbers")
        if len(values) != len(self.boundaries) + 1:
            v.fail(
                "values",
                values,
                f"a list one longer than `boundaries` ({len(self.boundaries)})",
            )
        self.values = [v.real(f"values[{i}]", x) for i, x in enumerate(values)]

    @classmethod
    def from_dict(cls, mapping):
        """Builds it from ``{first_step: value}``; must contain step 0."""
        expected = "a dict {first_step: value} with an entry for step 0"
        if not isinstance(mapping, dict):
            v.fail_type("mapping", mapping, expected)
        steps = {v.integer(f"mapping[{k!r}]", k, minimum=0): k for k in mapping}
        if 0 not in steps:
            v.fail("mapping", mapping, expected)
        keys = sorted(steps)
        with v.aliases({"boundaries": "mapping", "values": "mapping"}):
            return cls(keys[1:], [mapping[steps[k]] for k in keys])

    def _compute(self, m, step, base):
        out = m.float(self.values[0])
        for b, val in zip(self.boundaries, self.values[1:]):
            out = m.where(step >= b, val, out)
        return out

    def get_config(self):
        return {"boundaries": self.boundaries, "values": self.values}
