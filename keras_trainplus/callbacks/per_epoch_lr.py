"""`PerEpochLR` callback: a learning rate per epoch, with resets."""

from keras_trainplus import _export
from keras_trainplus import _validation as v
from keras_trainplus.callbacks._arguments import step_shape_schedule
from keras_trainplus.callbacks.hyperparameter_scheduler import (
    HyperparameterScheduler,
)
from keras_trainplus.schedules.per_epoch import PerEpoch


@_export.register
class PerEpochLR(HyperparameterScheduler):
    """Predefined learning rates per epoch (RETURNN's `learning_rates`).

    * a list ``[lr_0, lr_1, ...]``: epoch ``e`` uses ``lr_e``; after the
      list ends the last value is kept (RETURNN's "constant" control);
    * a dict ``{epoch: lr}``: the value from that epoch on; later entries are
      resets (``{0: 1e-3, 10: 5e-4, 20: 1e-3}``). Before the first key the
      optimizer's own learning rate is used.

    Epochs are Keras's 0-based epoch numbers (RETURNN counts from 1; its
    configs are imported with ``NewbobLRControl.from_returnn_config``).

    An optional per-step `step_shape` multiplies the per-epoch value inside
    the compiled step, e.g. a warmup: ``step_shape=schedules.Linear(0.0,
    1.0, 500)``.

    Args:
        learning_rates: list or dict, as above.
        step_shape: optional keras_trainplus schedule (a factor per step).
        verbose: int. Defaults to `0`.

    Example:

    ```python
    cb = keras_trainplus.callbacks.PerEpochLR([3e-4, 6e-4, 1e-3])  # warmup
    model.fit(x, y, epochs=10, callbacks=[cb])   # 1e-3 from epoch 2 on
    ```

    Raises:
        ValueError: for an empty or invalid `learning_rates`, or a
            `step_shape` that is not a schedule.
    """

    def __init__(self, learning_rates, step_shape=None, verbose=0):
        self.learning_rates = learning_rates
        with v.aliases({"values": "learning_rates"}):
            per_epoch = PerEpoch(learning_rates)
        self.step_shape = step_shape_schedule(step_shape)
        schedule = (
            per_epoch if step_shape is None else (per_epoch * self.step_shape)
        )
        argument = "learning_rates" if step_shape is None else "step_shape"
        super().__init__(
            {"learning_rate": schedule},
            origin="fit",
            verbose=verbose,
            options={"learning_rate": {"argument": argument}},
        )

    def get_config(self):
        per_epoch = PerEpoch(self.learning_rates).get_config()["values"]
        return {
            "learning_rates": per_epoch,
            "step_shape": (
                None
                if self.step_shape is None
                else _export.serialize(self.step_shape)
            ),
            "verbose": self.verbose,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["learning_rates"] = PerEpoch.from_config(
            {"values": config["learning_rates"]}
        ).values
        config["step_shape"] = _export.deserialize(config.get("step_shape"))
        return cls(**config)
