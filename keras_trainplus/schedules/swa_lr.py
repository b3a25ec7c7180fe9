"""`SWALR` schedule."""

from keras_trainplus import _export
from keras_trainplus import _validation as v
from keras_trainplus.schedules import _math
from keras_trainplus.schedules.schedule import Schedule


@_export.register
class SWALR(Schedule):
    """The learning rate of Stochastic Weight Averaging's annealing (torch's
    `torch.optim.swa_utils.SWALR`), counted in updates.

    From the base value (the learning rate when the annealing starts) to
    `swa_lr` over `anneal_steps` updates, then held:

    ```
    t = clip(step / anneal_steps, 0, 1)          (t = 1 if anneal_steps == 0)
    alpha = (1 - cos(pi * t)) / 2   ("cos")   or   t   ("linear")
    value = swa_lr * alpha + base * (1 - alpha)
    ```

    Step 0 keeps the base (torch's value right after the scheduler is
    built), step `anneal_steps` reaches `swa_lr`; 0 jumps at once. Torch's
    recursive form gives the same values while nothing else changes the
    learning rate (Izmailov et al. 2018, "Averaging Weights Leads to Wider
    Optima and Better Generalization").

    Args:
        swa_lr: float >= 0, the learning rate annealed to.
        anneal_steps: int >= 0, updates of the annealing. Defaults to `0`.
        anneal_strategy: `"cos"` (default) or `"linear"`.

    Example:

    >>> s = SWALR(0.01, anneal_steps=2, anneal_strategy="linear")
    >>> [round(float(s.evaluate(i, base=0.05)), 6) for i in range(4)]
    [0.05, 0.03, 0.01, 0.01]

    Raises:
        ValueError: for a negative or non-finite `swa_lr`, a negative
            `anneal_steps` or an unknown `anneal_strategy`.
    """

    def __init__(self, swa_lr, anneal_steps=0, anneal_strategy="cos"):
        self.swa_lr = v.real("swa_lr", swa_lr, minimum=0)
        self.anneal_steps = v.integer("anneal_steps", anneal_steps, minimum=0)
        self.anneal_strategy = v.choice(
            "anneal_strategy", anneal_strategy, ("cos", "linear")
        )

    def uses_base(self):
        return True

    def _compute(self, m, step, base):
        if base is None:
            raise ValueError(
                "`SWALR` anneals from the learning rate in use (its base): "
                "evaluate it with `schedule.evaluate(step, base=lr)`."
            )
        if self.anneal_steps == 0:
            return base * 0.0 + self.swa_lr
        total = float(self.anneal_steps)
        done = m.float(m.clip(step, 0, self.anneal_steps))
        return _math.anneal(
            m,
            self.anneal_strategy,
            base,
            self.swa_lr,
            done,
            lambda: total - done,
            total,
        )

    def get_config(self):
        return {
            "swa_lr": self.swa_lr,
            "anneal_steps": self.anneal_steps,
            "anneal_strategy": self.anneal_strategy,
        }
