"""`DropoutScheduler`: dropout rates that change during training."""

from keras_trainplus import _export
from keras_trainplus import _validation as v
from keras_trainplus.callbacks._arguments import epoch_schedule
from keras_trainplus.callbacks._arguments import layer_list
from keras_trainplus.callbacks._arguments import layer_names
from keras_trainplus.callbacks.hyperparameter_scheduler import (
    HyperparameterScheduler,
)


@_export.register
class DropoutScheduler(HyperparameterScheduler):
    """Schedules the dropout rate of existing dropout layers.

    Works on models built with stock `keras.layers.Dropout`,
    `SpatialDropout1D/2D/3D`, `GaussianDropout` and `AlphaDropout` (and
    `keras_trainplus.layers.ScheduledDropout`): all of them by default, or
    the given layers. Assigning `layer.rate` after Keras traced the train
    step changes nothing; here each layer reads a rate knob in the compiled
    step, which saved models and checkpoints do not contain (a preset of
    the driver, [docs/architecture.md](../docs/architecture.md)). A
    `Dropout(0.0)` can be raised later.

    `schedule` is one of:

    * a dict ``{epoch: rate}``: piecewise constant from that epoch on (e.g.
      RETURNN's "disable dropout initially": ``{0: 0.0, 3: 0.3}``); before
      the first key the layers keep their own rate;
    * a callable ``epoch -> rate`` (evaluated once per epoch);
    * a keras_trainplus schedule of the step, evaluated per update inside
      the compiled step (e.g. ``schedules.Linear(0.0, 0.5, 10_000)``).

    After `fit` the layers are stock, `rate` the last value. Logged:
    ``logs["dropout_rate"]``.

    Args:
        schedule: as above. Values must be in [0, 1).
        layers: `None` (all dropout layers) or a list of names or layers.
        verbose: int. Defaults to `0`.

    Example:

    ```python
    model.fit(x, y, epochs=20, callbacks=[
        keras_trainplus.callbacks.DropoutScheduler({0: 0.0, 5: 0.3}),
    ])
    ```

    Raises:
        ValueError: for an invalid schedule or rate (a callable's: when
            first evaluated); at `fit`, for missing dropout layers.
    """

    def __init__(self, schedule, layers=None, verbose=0):
        if isinstance(schedule, dict):  # None is no rate here
            for epoch, rate in schedule.items():
                if rate is None:
                    v.target_value("dropout", rate, f"schedule[{epoch!r}]")
        self.schedule = epoch_schedule("schedule", schedule, target="dropout")
        self.layers = layer_list("layers", layers)
        super().__init__(
            {"dropout": self.schedule},
            origin="fit",
            verbose=verbose,
            options={"dropout": {"layers": layers, "argument": "schedule"}},
        )

    def get_config(self):
        return {
            "schedule": _export.serialize(self.schedule),
            "layers": layer_names(self.layers),
            "verbose": self.verbose,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["schedule"] = _export.deserialize(config["schedule"])
        return cls(**config)
