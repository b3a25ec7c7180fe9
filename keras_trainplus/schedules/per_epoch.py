"""`PerEpoch` leaf."""

import math

import keras
import numpy as np

from keras_trainplus import _export
from keras_trainplus import _validation as v
from keras_trainplus.schedules.base_value import BaseValue
from keras_trainplus.schedules.schedule import Schedule


@_export.register
class PerEpoch(BaseValue):
    """A value chosen once per epoch, held in a knob for the compiled step.

    At the start of every epoch the driving callback evaluates this leaf for
    the (0-based, Keras) epoch and writes the result into the
    hyperparameter's base variable; in the compiled step the leaf reads that
    variable, so it combines with per-step shapes (``PerEpoch(...) *
    Linear(...)``).

    Args:
        values: one of
            - a list: ``values[e]`` for epoch ``e``; after the list ends the
              last value is held (RETURNN's `learning_rates` list);
            - a dict ``{epoch: value}``: the value from that epoch on, so a
              later entry is a reset (RETURNN's dict form, 0-based here).
              Before the first key the hyperparameter keeps the value it had
              when `fit` started;
            - a keras_trainplus schedule, evaluated at the epoch number;
            - a callable ``epoch -> value`` (serializable if registered
              with `keras.saving.register_keras_serializable`).
        none_value: what a `None` value (in a dict, or returned by a
            callable) means: `None` (default) keeps the current value;
            e.g. ``math.inf`` makes `None` mean "no clipping" for a clip
            threshold.

    Example:

    >>> p = PerEpoch({0: 1e-3, 3: 5e-4, 6: 1e-3})   # reset at epoch 6
    >>> [p.value_at(e) for e in (0, 2, 3, 6, 9)]
    [0.001, 0.001, 0.0005, 0.001, 0.001]

    Raises:
        ValueError: for an empty list/dict, negative epochs or non-finite
            values; from `value_at`, when a callable (or schedule) gives
            something other than a number (or None).
    """

    def __init__(self, values, none_value=None):
        # The argument as the user wrote it: a preset that forwards its own
        # argument here names it through `_validation.aliases`.
        self._argument = v.display("values")
        # The hyperparameter whose range `value_at` checks (set by presets).
        self._target = None
        self.none_value = (
            None if none_value is None else _value("none_value", none_value)
        )
        if isinstance(values, Schedule):
            if values.uses_base():
                v.fail(
                    "values",
                    values,
                    "a schedule without `BaseValue`/`PerEpoch` leaves",
                )
            self.values = values
        elif isinstance(values, dict):
            expected = "a non-empty dict {epoch: value} with int epochs >= 0"
            if not values or not all(v.is_integer(k, 0) for k in values):
                v.fail("values", values, expected)
            self.values = {
                v.integer("epoch", k, minimum=0): None
                if x is None
                else _value(f"values[{k!r}]", x)
                for k, x in values.items()
            }
        elif isinstance(values, (list, tuple, np.ndarray)):
            values = v.sequence("values", values, "a non-empty list")
            if not values:
                v.fail("values", values, "a non-empty list")
            self.values = [
                _value(f"values[{i}]", x) for i, x in enumerate(values)
            ]
        elif callable(values):
            self.values = values
        else:
            v.fail_type(
                "values",
                values,
                "a list, a dict {epoch: value}, a "
                "keras_trainplus schedule or a callable epoch -> "
                "value",
            )

    def value_at(self, epoch):
        """The value for a 0-based epoch, or None (keep the current one).

        Raises:
            ValueError: for a negative or non-integer `epoch`, or when a
                callable or schedule gives a value that is not a number
                (or out of range for the hyperparameter it drives).
        """
        epoch = v.integer("epoch", epoch, minimum=0)
        if isinstance(self.values, list):
            return self.values[min(epoch, len(self.values) - 1)]
        if isinstance(self.values, dict):
            keys = [k for k in self.values if k <= epoch]
            if not keys:
                return None
            value = self.values[max(keys)]
        else:
            value = self.values(epoch)
            if value is not None:
                name = f"{self._argument}({epoch})"
                if keras.ops.is_tensor(value):
                    value = keras.ops.convert_to_numpy(value)
                value = _value(name, value, f"the result of `{self._argument}`")
                if self._target is not None:
                    value = v.target_value(self._target, value, name)
        return self.none_value if value is None else value

    def _check_values(self, target, argument, bind):
        """Checks the list/dict values against `target`'s range (see
        `check_target_values`)."""
        name = self._argument
        if name == "values":  # built by the user: name it inside `argument`
            name = f"{argument}.values"
        if bind:
            self._target = target
        if isinstance(self.values, list):
            for i, x in enumerate(self.values):
                v.target_value(target, x, f"{name}[{i}]")
        elif isinstance(self.values, dict):
            for k, x in self.values.items():
                if x is not None:
                    v.target_value(target, x, f"{name}[{k!r}]")
        if self.none_value is not None:
            v.target_value(target, self.none_value, "none_value")

    def per_epoch_leaves(self):
        return [self]

    def get_config(self):
        values = self.values
        if isinstance(values, Schedule) or (
            callable(values) and not isinstance(values, (list, dict))
        ):
            values = _export.serialize_callable("values", values)
        elif isinstance(values, dict):
            # JSON object keys are strings; keep them as a list of pairs.
            values = {
                "epochs": sorted(values),
                "values": [_encode(values[k]) for k in sorted(values)],
            }
        else:
            values = [_encode(x) for x in values]
        return {"values": values, "none_value": _encode(self.none_value)}

    @classmethod
    def from_config(cls, config):
        values = config["values"]
        if isinstance(values, dict) and "epochs" in values:
            values = dict(
                zip(values["epochs"], [_decode(x) for x in values["values"]])
            )
        elif isinstance(values, list):
            values = [_decode(x) for x in values]
        else:
            values = _export.deserialize(values)
        return cls(values, none_value=_decode(config.get("none_value")))


def _value(name, x, what=None):
    """A finite number, or +inf (e.g. "no clipping")."""
    return v.real(name, x, allow_inf=True, what=what)


def check_target_values(target, schedule, argument):
    """Checks the values of `schedule` known before training against the
    range of hyperparameter `target` (`_validation.target_value`): a
    `Constant`, and the lists and dicts of its `PerEpoch` leaves, naming
    them as the user wrote them (`argument`, e.g. ``"schedules['lr']"``).
    Leaves a preset built also check their callables' values when first
    evaluated (`PerEpoch.value_at`)."""
    from keras_trainplus.schedules.constant import Constant

    if isinstance(schedule, Constant):
        v.target_value(target, schedule.value, argument)
    for leaf in schedule.per_epoch_leaves():
        leaf._check_values(target, argument, bind=leaf._argument != "values")


def _encode(x):
    return "Infinity" if x == math.inf else x


def _decode(x):
    return math.inf if x == "Infinity" else x
