"""`StepDecay` schedule."""

from keras_trainplus import _export
from keras_trainplus import _validation as v
from keras_trainplus.schedules.schedule import Schedule


@_export.register
class StepDecay(Schedule):
    """Multiplies the value by `gamma` every `step_size` steps or at milestones.

    With `step_size` (torch ``StepLR``):
    ``value = initial_value * gamma ** floor(step / step_size)``.
    With `milestones` (torch ``MultiStepLR``): the exponent is the number of
    milestones ``<= step``.

    Args:
        initial_value: float. Value at step 0.
        step_size: int >= 1, or `None` when `milestones` is given.
        gamma: float > 0. Multiplicative factor per decay. Defaults to `0.1`.
        milestones: increasing list of ints >= 1, or `None`.

    Example:

    >>> s = StepDecay(1.0, step_size=10, gamma=0.5)
    >>> [float(s(i)) for i in (0, 9, 10, 25)]
    [1.0, 1.0, 0.5, 0.25]
    >>> s = StepDecay(1.0, gamma=0.1, milestones=[3, 5])
    >>> [round(float(s(i)), 12) for i in (2, 3, 5)]
    [1.0, 0.1, 0.01]

    Raises:
        ValueError: unless exactly one of `step_size` and `milestones` is
            given, or for invalid values.
    """

    def __init__(
        self, initial_value, step_size=None, gamma=0.1, milestones=None
    ):
        self.initial_value = v.real("initial_value", initial_value)
        self.gamma = v.positive("gamma", gamma)
        if (step_size is None) == (milestones is None):
            raise ValueError(
                "Pass exactly one of `step_size` and `milestones`. Received: "
                f"step_size={step_size!r}, milestones={milestones!r}"
            )
        self.step_size = v.integer(
            "step_size", step_size, minimum=1, allow_none=True
        )
        if milestones is not None:
            milestones = _increasing_ints("milestones", milestones)
        self.milestones = milestones

    def _compute(self, m, step, base):
        if self.step_size is not None:
            k = m.floordiv(m.maximum(step, 0), self.step_size)
        else:
            k = 0
            for b in self.milestones:
                k = k + m.where(step >= b, 1, 0)
        return self.initial_value * m.power(self.gamma, m.float(k))

    def get_config(self):
        return {
            "initial_value": self.initial_value,
            "step_size": self.step_size,
            "gamma": self.gamma,
            "milestones": self.milestones,
        }


def _increasing_ints(name, values, minimum=1):
    values = v.sequence(name, values, f"a list of integers >= {minimum}")
    out = [
        v.integer(f"{name}[{i}]", b, minimum=minimum)
        for i, b in enumerate(values)
    ]
    if any(b <= a for a, b in zip(out, out[1:])):
        v.fail(name, values, "strictly increasing")
    return out
