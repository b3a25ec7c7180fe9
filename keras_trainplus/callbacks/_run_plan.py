"""How many updates a `fit` runs and where each epoch starts, for the
driver's lengths, offsets and layer counters.

Two accumulations change the count. Keras's own (`gradient_accumulation_steps
= k` on the optimizer): an update every k micro-batches, the micro-batches
left at an epoch end carried into the next epoch. A
`GradientAccumulationScheduler` (the ``"gradient_accumulation"`` target):
factor ``k_e`` in epoch ``e`` and the leftovers flushed at every epoch end,
so epoch ``e`` makes ``ceil(steps / k_e)`` updates.
"""

import math

from keras_trainplus import _validation as v
from keras_trainplus.knobs.step_counter import SchedulePosition
from keras_trainplus.schedules.constant import Constant
from keras_trainplus.schedules.per_epoch import PerEpoch

TARGET = "gradient_accumulation"


class RunPlan:
    """Updates of one `fit`.

    Args:
        steps: micro-batches per epoch (`fit`'s steps), or None.
        epochs: the `epochs` of `fit`.
        keras_factor: the optimizer's `gradient_accumulation_steps` (1 if
            none).
        factors: None, or a function epoch -> k of a scheduled
            accumulation.
    """

    def __init__(self, steps, epochs, keras_factor=1, factors=None):
        self.steps = steps
        self.epochs = epochs
        self.keras_factor = keras_factor
        self.factors = factors

    def updates_in(self, epoch):
        return math.ceil(self.steps / self.factors(epoch))

    def updates_before(self, epoch):
        """Updates of epochs ``0 .. epoch - 1`` (needs `steps`)."""
        if self.factors is None:
            return epoch * self.steps // self.keras_factor
        return sum(self.updates_in(e) for e in range(epoch))

    def length(self, owner, fix):
        """Updates of the whole `fit`, or a clear error naming `fix` when
        the steps per epoch are unknown."""
        if self.steps is None or self.epochs is None:
            raise ValueError(
                f"{owner} needs the number of updates, but `fit` does not "
                "know the steps per epoch (a dataset of unknown length). "
                f"Pass `steps_per_epoch` to `fit`, or {fix}."
            )
        return self.updates_before(self.epochs)

    def offset(self, epoch, iterations, owner):
        """`optimizer.iterations` at the fit's step 0, resuming at
        `epoch`."""
        if self.steps is None:
            raise ValueError(
                f"`fit` starts at epoch {epoch} (resuming), but the number of "
                "steps per epoch is unknown, so the schedule's step 0 cannot "
                "be placed. Pass `steps_per_epoch` to `fit`, or use "
                f"`{owner}(..., origin='global')`."
            )
        return iterations - self.updates_before(epoch)

    def last_update(self, epoch, iterations, micro_iterations):
        """The `optimizer.iterations` of the last update of the `fit`, from
        the start of `epoch`."""
        if self.factors is None:
            left = micro_iterations + (self.epochs - epoch) * self.steps
            return left // self.keras_factor - 1
        rest = range(epoch, self.epochs)
        return iterations + sum(self.updates_in(e) for e in rest) - 1

    def position(self, epoch, iterations, micro_iterations, offset):
        """The `SchedulePosition` of the next update at the start of
        `epoch`."""
        if self.factors is None:
            k = self.keras_factor
            return SchedulePosition(
                iterations - offset, k, micro_iterations % k, self.steps
            )
        return SchedulePosition(
            iterations - offset, self.factors(epoch), 0, self.steps
        )


def factors_of(schedule, argument):
    """The function epoch -> k of a ``"gradient_accumulation"`` schedule
    (a number, or a `PerEpoch` leaf: before a dict's first key and where a
    callable gives None, the factor of the epoch before, 1 at the start),
    its values checked and memoized.

    Raises:
        ValueError: for a per-step schedule, or a factor that is not an
            integer >= 1 (naming `argument`).
    """
    if isinstance(schedule, Constant):
        k = _check(schedule.value, argument)
        return lambda epoch: k
    if not isinstance(schedule, PerEpoch):
        raise ValueError(
            "The gradient accumulation factor changes between epochs only: "
            "give a number, a dict {epoch: factor}, a list or a callable "
            f"epoch -> factor. Received: {argument}={schedule!r}"
        )
    known = []

    def factor(epoch):
        while len(known) <= epoch:
            e = len(known)
            value = schedule.value_at(e)
            if value is None:
                known.append(known[-1] if known else 1)
            else:
                known.append(_check(value, f"{argument}[{e}]"))
        return known[epoch]

    return factor


def _check(value, argument):
    return int(v.target_value(TARGET, value, argument))
