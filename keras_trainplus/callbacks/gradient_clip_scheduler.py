"""`GradientClipScheduler`: gradient clipping switched by epoch or step."""

import math

from keras_trainplus import _export
from keras_trainplus import _validation as v
from keras_trainplus.callbacks._arguments import epoch_schedule
from keras_trainplus.callbacks.hyperparameter_scheduler import (
    HyperparameterScheduler,
)


@_export.register
class GradientClipScheduler(HyperparameterScheduler):
    """Schedules gradient clipping (or switches it on and off) by epoch or
    step, applied to the aggregated gradient.

    Keras reads `clipnorm`/`global_clipnorm`/`clipvalue` when it traces the
    train step, so changing them later does nothing; and under
    `tf.distribute` Keras clips each replica's gradient *before* the
    cross-replica sum (2 replicas effectively clip at twice the threshold).
    Here the threshold is read inside the compiled step and, on TF, the
    clipping acts on the all-reduced gradient, so every replica applies
    exactly the update a single device would.

    `schedule` is a dict ``{epoch: threshold or None}`` (None = no
    clipping; e.g. "clip at 10 for the first 5 epochs, then not at all":
    ``{0: 10.0, 5: None}``), a callable ``epoch -> threshold or None``, or
    a keras_trainplus schedule of the step. While installed it replaces the
    optimizer's own clipping arguments.

    Checkpoints hold exactly the optimizer's stock variables. Logged:
    ``logs["gradient_clip"]`` (`inf` when off). A preset of the driver:
    [docs/architecture.md](../docs/architecture.md).

    Args:
        schedule: as above. Thresholds must be > 0.
        mode: `"global_norm"` (default: scale all gradients by
            ``thr / ||g||`` when the global norm exceeds it), `"norm"` (per
            tensor) or `"value"` (clip each element to [-thr, thr]).
        verbose: int. Defaults to `0`.

    Example:

    ```python
    model.fit(x, y, epochs=20, callbacks=[
        keras_trainplus.callbacks.GradientClipScheduler({0: 10.0, 5: None}),
    ])
    ```

    Raises:
        ValueError: for an unknown mode or a threshold <= 0 (or NaN); for
            a callable, when it first returns one.
    """

    def __init__(self, schedule, mode="global_norm", verbose=0):
        from keras_trainplus.knobs.gradient_clip import CLIP_MODES

        self.mode = v.choice("mode", mode, CLIP_MODES)
        self.schedule = epoch_schedule(
            "schedule", schedule, none_value=math.inf, target="gradient_clip"
        )
        super().__init__(
            {"gradient_clip": self.schedule},
            origin="fit",
            verbose=verbose,
            options={
                "gradient_clip": {"mode": self.mode, "argument": "schedule"}
            },
        )

    def get_config(self):
        return {
            "schedule": _export.serialize(self.schedule),
            "mode": self.mode,
            "verbose": self.verbose,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["schedule"] = _export.deserialize(config["schedule"])
        return cls(**config)
