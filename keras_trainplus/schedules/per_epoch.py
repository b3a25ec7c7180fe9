"""`PerEpoch` leaf."""

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
            - a keras_trainplus schedule, evaluated at the epoch number.

    Example:

    >>> p = PerEpoch({0: 1e-3, 3: 5e-4, 6: 1e-3})   # reset at epoch 6
    >>> [p.value_at(e) for e in (0, 2, 3, 6, 9)]
    [0.001, 0.001, 0.0005, 0.001, 0.001]

    Raises:
        ValueError: for an empty list/dict, negative epochs or non-finite
            values.
    """

    def __init__(self, values):
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
                v.integer("epoch", k, minimum=0): v.real(f"values[{k}]", x)
                for k, x in values.items()
            }
        elif isinstance(values, (list, tuple)):
            if not values:
                raise ValueError("Argument `values` must not be empty. "
                                 f"Received: values={values!r}")
            self.values = [v.real(f"values[{i}]", x)
                           for i, x in enumerate(values)]
        else:
            raise ValueError(
                "Argument `values` must be a list, a dict {epoch: value} or a "
                f"keras_trainplus schedule. Received: values={values!r}"
            )

    def value_at(self, epoch):
        """The value for a 0-based epoch, or None (keep the current one)."""
        if isinstance(self.values, Schedule):
            return float(self.values(int(epoch)))
        if isinstance(self.values, list):
            return self.values[min(int(epoch), len(self.values) - 1)]
        keys = [k for k in self.values if k <= epoch]
        return self.values[max(keys)] if keys else None

    def per_epoch_leaves(self):
        return [self]

    def get_config(self):
        values = self.values
        if isinstance(values, Schedule):
            values = _export.serialize(values)
        elif isinstance(values, dict):
            # JSON object keys are strings; keep them as a list of pairs.
            values = {"epochs": sorted(values),
                      "values": [values[k] for k in sorted(values)]}
        return {"values": values}

    @classmethod
    def from_config(cls, config):
        values = config["values"]
        if isinstance(values, dict) and "epochs" in values:
            values = dict(zip(values["epochs"], values["values"]))
        else:
            values = _export.deserialize(values)
        return cls(values)
