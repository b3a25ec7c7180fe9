"""`EMAWarmup` schedule."""

from keras_trainplus import _export
from keras_trainplus import _validation as v
from keras_trainplus.schedules.schedule import Schedule


@_export.register
class EMAWarmup(Schedule):
    """The decay of a weight EMA with warmup (timm's `ModelEmaV3`), as a
    function of the number of EMA updates already made.

    ```
    decay_t = clip(1 - (1 + t / warmup_gamma) ** -warmup_power,
                   min_decay, base)
    ```

    `base` is the decay's own value (the cap, e.g. 0.9999), so a schedule of
    the decay itself still applies. Early updates average over few steps
    (``decay_0 = 0``: the first update copies the weights, with
    ``min_decay = 0``), later ones over ~``1 / (1 - base)``. timm's
    defaults: `warmup_gamma` 1, `warmup_power` 2/3 (good for long runs; 3/4
    for short ones).

    Args:
        warmup_gamma: float > 0. Defaults to `1.0`.
        warmup_power: float > 0. Defaults to `2/3`.
        min_decay: float in [0, 1). Defaults to `0.0`.

    Example:

    >>> s = EMAWarmup(warmup_gamma=1.0, warmup_power=1.0)
    >>> [round(float(s.evaluate(t, base=0.9)), 6) for t in (0, 1, 3, 100)]
    [0.0, 0.5, 0.75, 0.9]

    Raises:
        ValueError: for a `warmup_gamma` or `warmup_power` <= 0, or a
            `min_decay` outside [0, 1).
    """

    def __init__(self, warmup_gamma=1.0, warmup_power=2 / 3, min_decay=0.0):
        self.warmup_gamma = v.positive("warmup_gamma", warmup_gamma)
        self.warmup_power = v.positive("warmup_power", warmup_power)
        self.min_decay = v.real(
            "min_decay", min_decay, minimum=0, maximum=1, max_inclusive=False
        )

    def uses_base(self):
        return True

    def _compute(self, m, step, base):
        if base is None:
            raise ValueError(
                "`EMAWarmup` is capped by the decay (its base): evaluate it "
                "with `schedule.evaluate(t, base=decay)`."
            )
        t = m.float(m.maximum(step, 0))
        ramp = 1.0 - m.exp(
            -self.warmup_power * m.log(1.0 + t / self.warmup_gamma)
        )
        return m.minimum(m.maximum(ramp, self.min_decay), base)

    def get_config(self):
        return {
            "warmup_gamma": self.warmup_gamma,
            "warmup_power": self.warmup_power,
            "min_decay": self.min_decay,
        }
