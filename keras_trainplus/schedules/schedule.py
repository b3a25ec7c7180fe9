"""The `Schedule` base class: a pure, serializable function of the step."""

import json
import math
import numbers

import keras
import numpy as np

from keras_trainplus import _export
from keras_trainplus import _validation as v
from keras_trainplus.schedules import _math


class Schedule(keras.optimizers.schedules.LearningRateSchedule):
    """Base class of every keras_trainplus schedule.

    A schedule is a pure function of an integer step (the number of optimizer
    updates already applied, so update ``i`` uses ``schedule(i)``). It is
    evaluated inside the compiled train step, which makes it exact for any
    `steps_per_execution`, under XLA, under `tf.distribute` and on JAX and
    torch.

    Schedules subclass `keras.optimizers.schedules.LearningRateSchedule`, so
    any schedule without a `BaseValue`/`PerEpoch` leaf can be passed straight
    to an optimizer (``keras.optimizers.SGD(learning_rate=schedule)``). They
    can also drive any hyperparameter through
    `keras_trainplus.callbacks.HyperparameterScheduler`.

    Calling a schedule with a Python or NumPy integer evaluates it on the host
    in float64 and returns a NumPy float64; calling it with a tensor evaluates
    it with `keras.ops` (float64 where the backend supports it). Step
    arithmetic is done in integers, so values stay exact for very long runs.

    Schedules compose: ``a * b`` (or ``a * 0.5``) is a `Product`, `Join` runs
    schedules one after another, `Restart` repeats one periodically.

    Subclasses implement ``_compute(m, step, base)`` with the numeric
    namespace ``m`` (see ``keras_trainplus._math``) and ``get_config()``.

    Example:

    >>> from keras_trainplus import schedules
    >>> warmup = schedules.Linear(0.0, 1e-3, duration=100)
    >>> decay = schedules.Cosine(1e-3, 0.0, duration=900)
    >>> lr = schedules.Join([warmup, decay], boundaries=[100])
    >>> float(lr(50))
    0.0005
    """

    def __call__(self, step):
        return self.evaluate(step)

    def evaluate(self, step, base=None):
        """Evaluates the schedule at `step`.

        Args:
            step: integer step (Python/NumPy integer or integer tensor).
            base: value of the `BaseValue` / `PerEpoch` leaves, if any.

        Returns:
            A NumPy float64 for a concrete step, else a float tensor.

        Raises:
            ValueError: for a `step` that is neither an integer nor a
                tensor, or a non-numeric `base`.
        """
        _check_step(step)
        m, s = _math.prepare(step)
        if base is not None:
            if _math.is_concrete(base) or isinstance(
                base, (str, bytes, list, dict)
            ):
                base = v.real("base", base, allow_inf=True)
            base = m.float(base)
        return m.result(self._compute(m, s, base))

    def _compute(self, m, step, base):
        raise NotImplementedError(
            f"{type(self).__name__} must implement `_compute(m, step, base)`."
        )

    def children(self):
        """Nested schedules (for composites)."""
        return []

    def set_horizon(self, num_steps):
        """Declares that steps ``0 .. num_steps - 1`` will be evaluated
        (None: unknown). Schedules that tabulate a Python callable for
        in-graph use (`Cyclical`'s `scale_fn`) size the table with it;
        composites pass it on. Returns the schedule."""
        for child in self.children():
            if isinstance(child, Schedule):
                child.set_horizon(num_steps)
        return self

    def uses_base(self):
        """Whether a `BaseValue`/`PerEpoch` leaf appears in this schedule."""
        return any(c.uses_base() for c in self.children())

    def per_epoch_leaves(self):
        """All `PerEpoch` leaves of this schedule."""
        leaves = []
        for c in self.children():
            leaves.extend(c.per_epoch_leaves())
        return leaves

    def get_config(self):
        raise NotImplementedError(
            f"{type(self).__name__} must override `get_config()` and return "
            "its constructor arguments as plain numbers and strings."
        )

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __mul__(self, other):
        from keras_trainplus.schedules.product import Product

        return Product([self, as_schedule(other, "other")])

    __rmul__ = __mul__

    def __repr__(self):
        try:
            cfg = self.get_config()
        except Exception:  # e.g. an unserializable user callable
            cfg = {}
        args = ", ".join(f"{k}={v!r}" for k, v in cfg.items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        try:
            return self.get_config() == other.get_config()
        except Exception:
            return self is other

    def __hash__(self):
        # Equal schedules (same type and config) hash alike.
        try:
            config = json.dumps(self.get_config(), sort_keys=True, default=repr)
        except Exception:
            return id(self)
        return hash((type(self).__name__, config))


def as_schedule(value, name):
    """Returns `value` as a `Schedule` (numbers become `Constant`)."""
    from keras_trainplus.schedules.constant import Constant

    if isinstance(value, Schedule):
        return value
    value = v.scalar(value)
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        with v.aliases({"value": name}):
            return Constant(value)
    v.fail_type(name, value, "a keras_trainplus schedule or a number")


def _check_step(step):
    """Refuses what is neither an integer step nor a tensor (a float step
    is floored, as before)."""
    if (
        isinstance(step, (bool, np.bool_))
        or step is None
        or isinstance(step, (str, bytes, list, tuple, dict))
    ):
        v.fail_type("step", step, "an integer step or an integer tensor")
    if _math.is_concrete(step) and not math.isfinite(float(step)):
        v.fail("step", step, "a finite integer step")


def serialize_schedules(schedules):
    return [_export.serialize(s) for s in schedules]


def deserialize_schedules(configs):
    return [_export.deserialize(c) for c in configs]
