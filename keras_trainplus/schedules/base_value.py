"""`BaseValue` leaf."""

from keras_trainplus import _export
from keras_trainplus.schedules.schedule import Schedule


@_export.register
class BaseValue(Schedule):
    """The current base value of the scheduled hyperparameter (a knob).

    Inside `keras_trainplus.callbacks.HyperparameterScheduler` this leaf reads
    the variable that holds the hyperparameter's base value; for the learning
    rate that is the optimizer's own learning-rate variable. Whatever writes
    that variable once per epoch (e.g. `NewbobLRControl`, Keras's
    `ReduceLROnPlateau`) then combines with a per-step shape:
    ``BaseValue() * Linear(0.0, 1.0, 1000)`` is "the controller's rate with a
    1000-step linear warmup", evaluated per step in the compiled step.

    It has no value on its own: calling it outside a driver raises.

    Example:

    >>> from keras_trainplus import schedules as S
    >>> warm = S.BaseValue() * S.Linear(0.0, 1.0, 4)
    >>> float(warm.evaluate(2, base=0.1))
    0.05
    """

    def _compute(self, m, step, base):
        if base is None:
            raise ValueError(
                "`BaseValue()` reads the hyperparameter's base value (a "
                "knob), which only exists when the schedule is driven by "
                "`keras_trainplus.callbacks.HyperparameterScheduler` (or "
                "evaluated with `schedule.evaluate(step, base=...)`). It "
                "cannot be passed to an optimizer directly."
            )
        return base

    def uses_base(self):
        return True

    def get_config(self):
        return {}
