"""`PiecewiseAnneal` schedule."""

from keras_trainplus import _export
from keras_trainplus import _validation as v
from keras_trainplus.schedules import _math
from keras_trainplus.schedules.schedule import Schedule


@_export.register
class PiecewiseAnneal(Schedule):
    """Anneals through a list of values, phase by phase, then holds the last.

    Phase ``j`` runs from ``boundaries[j-1]`` (0 for the first phase) to
    ``boundaries[j]`` and anneals from ``values[j]`` to ``values[j+1]``. A
    step belongs to the first phase whose end is ``>= step`` (torch
    ``OneCycleLR`` semantics, so boundaries may be fractional, e.g.
    ``0.3 * 97 - 1``). After the last boundary the last value is held.

    ```
    pct = (step - start) / (end - start)
    cos:    value = hi + (lo - hi) * (1 + cos(pi * pct)) / 2   # lo -> hi
    linear: value = lo + (hi - lo) * pct
    ```

    Args:
        boundaries: strictly increasing list of positive numbers (phase end
            steps).
        values: list of floats, one longer than `boundaries`.
        anneal: `"cos"` or `"linear"`. Defaults to `"cos"`.

    Example:

    >>> s = PiecewiseAnneal([2, 4], [0.0, 1.0, 0.0], anneal="linear")
    >>> [float(s(i)) for i in range(6)]
    [0.0, 0.5, 1.0, 0.5, 0.0, 0.0]

    Raises:
        ValueError: for mismatched lengths, unordered boundaries or an
            unknown `anneal`.
    """

    def __init__(self, boundaries, values, anneal="cos"):
        expected = "a non-empty, strictly increasing list of numbers > 0"
        bounds = [
            v.real(f"boundaries[{i}]", b, minimum=0, min_inclusive=False)
            for i, b in enumerate(
                v.sequence("boundaries", boundaries, expected)
            )
        ]
        if not bounds or any(b <= a for a, b in zip(bounds, bounds[1:])):
            v.fail("boundaries", boundaries, expected)
        values = [
            v.real(f"values[{i}]", x)
            for i, x in enumerate(
                v.sequence("values", values, "a list of numbers")
            )
        ]
        if len(values) != len(bounds) + 1:
            v.fail(
                "values",
                values,
                f"a list one longer than `boundaries` ({len(bounds)})",
            )
        self.boundaries = bounds
        self.values = values
        self.anneal = v.choice("anneal", anneal, ("cos", "linear"))

    def _phase(self, m, step, j):
        start = 0.0 if j == 0 else self.boundaries[j - 1]
        end = self.boundaries[j]
        lo, hi = self.values[j], self.values[j + 1]
        return _math.anneal(
            m,
            self.anneal,
            lo,
            hi,
            _math.offset(m, step, start),
            lambda: _math.remaining(m, end, step),
            end - start,
        )

    def _compute(self, m, step, base):
        out = m.float(self.values[-1])
        for j in range(len(self.boundaries) - 1, -1, -1):
            # `step <= end` for an integer step and a real end.
            last_step = _math.split_boundary(self.boundaries[j])[0]
            out = m.where(step <= last_step, self._phase(m, step, j), out)
        return out

    def get_config(self):
        return {
            "boundaries": self.boundaries,
            "values": self.values,
            "anneal": self.anneal,
        }
