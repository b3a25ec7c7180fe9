"""`PerEpoch` leaf."""

import math

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
            values.
    """

    def __init__(self, values, none_value=None):
        self.none_value = None if none_value is None else _value(
            "none_value", none_value)
        if isinstance(values, Schedule):
            if values.uses_base():
                raise ValueError(
                    "Argument `values` must not contain `BaseValue`/"
                    f"`PerEpoch` leaves. Received: values={values!r}"
                )
            self.values = values
        elif isinstance(values, dict):
            if not values:
                raise ValueError("Argument `values` must not be empty. "
                                 "Received: values={}")
            self.values = {
                v.integer("epoch", k, minimum=0):
                    None if x is None else _value(f"values[{k}]", x)
                for k, x in values.items()
            }
        elif isinstance(values, (list, tuple)):
            if not values:
                raise ValueError("Argument `values` must not be empty. "
                                 f"Received: values={values!r}")
            self.values = [_value(f"values[{i}]", x)
                           for i, x in enumerate(values)]
        elif callable(values):
            self.values = values
        else:
            raise ValueError(
                "Argument `values` must be a list, a dict {epoch: value}, a "
                "keras_trainplus schedule or a callable epoch -> value. "
                f"Received: values={values!r}"
            )

    def value_at(self, epoch):
        """The value for a 0-based epoch, or None (keep the current one)."""
        if isinstance(self.values, Schedule):
            return float(self.values(int(epoch)))
        if isinstance(self.values, list):
            return self.values[min(int(epoch), len(self.values) - 1)]
        if isinstance(self.values, dict):
            keys = [k for k in self.values if k <= epoch]
            if not keys:
                return None
            value = self.values[max(keys)]
        else:
            value = self.values(int(epoch))
            if value is not None:
                value = _value(f"values({epoch})", value)
        return self.none_value if value is None else value

    def per_epoch_leaves(self):
        return [self]

    def get_config(self):
        values = self.values
        if isinstance(values, Schedule) or (callable(values) and not
                                             isinstance(values, (list,
                                                                 dict))):
            values = _export.serialize_callable("values", values)
        elif isinstance(values, dict):
            # JSON object keys are strings; keep them as a list of pairs.
            values = {"epochs": sorted(values),
                      "values": [_encode(values[k]) for k in sorted(values)]}
        else:
            values = [_encode(x) for x in values]
        return {"values": values, "none_value": _encode(self.none_value)}

    @classmethod
    def from_config(cls, config):
        values = config["values"]
        if isinstance(values, dict) and "epochs" in values:
            values = dict(zip(values["epochs"],
                              [_decode(x) for x in values["values"]]))
        elif isinstance(values, list):
            values = [_decode(x) for x in values]
        else:
            values = _export.deserialize(values)
        return cls(values, none_value=_decode(config.get("none_value")))


def _value(name, x):
    """A finite number, or +inf (e.g. "no clipping")."""
    if x == math.inf:
        return math.inf
    return v.real(name, x)


def _encode(x):
    return "Infinity" if x == math.inf else x


def _decode(x):
    return math.inf if x == "Infinity" else x
