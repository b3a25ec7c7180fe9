"""`BoundKnob`: a target bound to one model for one `fit` (the base of
every knob class of this package), and the helpers they share."""

import keras
import numpy as np

from keras_trainplus import _internals as internals
from keras_trainplus import _validation as v


def host_iterations(optimizer):
    """`optimizer.iterations` as a Python int (read on the host)."""
    return int(keras.ops.convert_to_numpy(optimizer.iterations))


def _jax():
    return keras.backend.backend() == "jax"


class BoundKnob:
    """A target bound to one model."""

    log_key = None

    def __init__(self, model):
        self.model = model
        self.optimizers = internals.optimizer.optimizers_of(model.optimizer)

    def iterations(self):
        """Real updates applied (`optimizer.iterations`)."""
        return host_iterations(self.optimizers[0])

    def accumulation(self):
        """Micro-batches per update (gradient accumulation, else 1)."""
        return internals.optimizer.accumulation_steps(self.optimizers[0])

    def micro_iterations(self):
        return internals.optimizer.micro_iterations(self.optimizers[0])

    def base(self):
        return None

    def install(self, schedule, offset):
        raise NotImplementedError

    def uninstall(self):
        raise NotImplementedError

    def epoch_begin(self, position):
        """Called at every epoch start with the `SchedulePosition` of the
        next update (the schedule's step, micro-batches per update, and
        those already accumulated)."""

    def value_keys(self):
        """``[(key, description)]`` of the values this target writes (one
        writer per value, see `_fit_guard`)."""
        return []

    def _optimizer_keys(self, kind, what):
        """`value_keys` of a value held once per optimizer: ``(kind,
        id(optimizer))``, described as "the <what> of optimizer '<name>'"."""
        return [
            ((kind, id(opt)), f"the {what} of optimizer {opt.name!r}")
            for opt in self.optimizers
        ]

    def restore_original(self):
        """Puts back the values of before `fit` (after an exception)."""

    def own(self):
        """The value is owned outright from now on (before any callback of
        the `fit` writes it): another writer is an error."""

    def check_external_write(self, owner):
        """Raises if something else wrote a value this target owns."""

    def check_value(self, target, value, argument):
        """Checks a value of this target for `argument` (see
        `_validation.target_value`); returns it as a float."""
        return v.target_value(target, value, argument)

    def set_base(self, value):
        """Writes the per-epoch base value into the knob."""
        raise NotImplementedError

    def logged(self, value):
        """What `logs` gets for the value the last update used."""
        return value

    def mirror(self, value):
        """Leaves `value` where Keras users look for it (config, attrs)."""


def _like(original, value):
    """`value` with the type of the attribute it replaces (an integer
    count stays an integer)."""
    if isinstance(original, int) and not isinstance(original, bool):
        return int(round(float(value)))
    return float(value)


def is_bare_base(schedule):
    """A schedule that is just the base value (`BaseValue()` or a
    `PerEpoch` leaf): the knob itself, no program needed."""
    from keras_trainplus.schedules.base_value import BaseValue
    from keras_trainplus.schedules.per_epoch import PerEpoch

    return isinstance(schedule, (BaseValue, PerEpoch))


def host_value(schedule, step, base):
    return float(schedule.evaluate(np.int64(step), base=base))
