"""`OneCycle` schedule (Smith's 1cycle policy, torch semantics)."""

from keras_trainplus import _export
from keras_trainplus import _validation as v
from keras_trainplus.schedules.piecewise_anneal import PiecewiseAnneal
from keras_trainplus.schedules.schedule import Schedule


@_export.register
class OneCycle(Schedule):
    """The 1cycle learning-rate shape of torch's ``OneCycleLR``.

    With ``T = total_steps``, ``initial = max_value / div_factor`` and
    ``minimum = initial / final_div_factor``:

    * two phases (default): `initial` -> `max_value` until step
      ``pct_start * T - 1``, then `max_value` -> `minimum` at step ``T - 1``;
    * ``three_phase=True``: `initial` -> `max_value` (until
      ``pct_start * T - 1``) -> `initial` (until ``2 * pct_start * T - 2``)
      -> `minimum` (at ``T - 1``), Smith's original with an annihilation
      phase.

    Both phases use the same anneal (`"cos"` or `"linear"`); step ``T - 1``
    is exactly `minimum`, held past the end (torch raises). The matching
    inverse momentum schedule: `OneCycle.momentum`.

    Args:
        max_value: float > 0. Peak value.
        total_steps: int >= 2. Number of updates in the cycle.
        pct_start: float in (0, 1). Fraction of the cycle spent rising.
            Defaults to `0.3`.
        anneal_strategy: `"cos"` or `"linear"`. Defaults to `"cos"`.
        div_factor: float > 0. ``initial = max_value / div_factor``.
            Defaults to `25.0`.
        final_div_factor: float > 0. ``minimum = initial /
            final_div_factor``. Defaults to `1e4`.
        three_phase: bool. Defaults to `False`.

    Example:

    >>> s = OneCycle(1.0, total_steps=10, pct_start=0.5,
    ...              anneal_strategy="linear", div_factor=10.0,
    ...              final_div_factor=1.0)
    >>> [round(float(s(i)), 6) for i in (0, 4, 9)]
    [0.1, 1.0, 0.1]

    Raises:
        ValueError: for invalid arguments, or when a phase would be empty
            (``pct_start * total_steps`` too small or too large).
    """

    def __init__(
        self,
        max_value,
        total_steps,
        pct_start=0.3,
        anneal_strategy="cos",
        div_factor=25.0,
        final_div_factor=1e4,
        three_phase=False,
    ):
        self.max_value = v.positive("max_value", max_value)
        (
            self.total_steps,
            self.pct_start,
            self.anneal_strategy,
            three_phase,
        ) = _shape_args(total_steps, pct_start, anneal_strategy, three_phase)
        self.div_factor = v.positive("div_factor", div_factor)
        self.final_div_factor = v.positive("final_div_factor", final_div_factor)
        self.three_phase = three_phase
        self.boundaries = phase_boundaries(
            self.total_steps, self.pct_start, self.three_phase
        )
        initial = self.max_value / self.div_factor
        minimum = initial / self.final_div_factor
        if self.three_phase:
            values = [initial, self.max_value, initial, minimum]
        else:
            values = [initial, self.max_value, minimum]
        self._shape = PiecewiseAnneal(
            self.boundaries, values, self.anneal_strategy
        )

    @staticmethod
    def momentum(
        base_momentum,
        max_momentum,
        total_steps,
        pct_start=0.3,
        anneal_strategy="cos",
        three_phase=False,
    ):
        """The momentum schedule matching a `OneCycle` (inverse to the LR).

        `max_momentum` -> `base_momentum` while the value rises, back to
        `max_momentum` while it falls (then held in the third phase).

        Returns:
            A `PiecewiseAnneal` schedule.

        Raises:
            ValueError: for invalid arguments, as for `OneCycle`.
        """
        base = v.real("base_momentum", base_momentum)
        top = v.real("max_momentum", max_momentum)
        total_steps, pct_start, anneal_strategy, three_phase = _shape_args(
            total_steps, pct_start, anneal_strategy, three_phase
        )
        bounds = phase_boundaries(total_steps, pct_start, three_phase)
        values = [top, base, top] + ([top] if three_phase else [])
        return PiecewiseAnneal(bounds, values, anneal_strategy)

    def _compute(self, m, step, base):
        return self._shape._compute(m, step, base)

    def get_config(self):
        return {
            "max_value": self.max_value,
            "total_steps": self.total_steps,
            "pct_start": self.pct_start,
            "anneal_strategy": self.anneal_strategy,
            "div_factor": self.div_factor,
            "final_div_factor": self.final_div_factor,
            "three_phase": self.three_phase,
        }


def _shape_args(total_steps, pct_start, anneal_strategy, three_phase):
    """The checked arguments shared by `OneCycle` and `OneCycle.momentum`."""
    return (
        v.integer("total_steps", total_steps, minimum=2),
        v.real(
            "pct_start",
            pct_start,
            minimum=0,
            maximum=1,
            min_inclusive=False,
            max_inclusive=False,
        ),
        v.choice("anneal_strategy", anneal_strategy, ("cos", "linear")),
        v.boolean("three_phase", three_phase),
    )


def phase_boundaries(total_steps, pct_start, three_phase):
    """torch's phase end steps, validated to give non-empty phases."""
    t = float(total_steps)
    if three_phase:
        bounds = [pct_start * t - 1, 2 * pct_start * t - 2, t - 1]
    else:
        bounds = [pct_start * t - 1, t - 1]
    starts = [0.0] + bounds[:-1]
    if any(end <= start for start, end in zip(starts, bounds)):
        raise ValueError(
            "Arguments `pct_start` and `total_steps` give an empty phase "
            f"(phase ends at steps {bounds}). Received: pct_start={pct_start}"
            f", total_steps={total_steps}, three_phase={three_phase}. Use "
            "more steps or a `pct_start` further from 0"
            + (" and 0.5." if three_phase else " and 1.")
        )
    return bounds
