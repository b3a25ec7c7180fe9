"""`CyclicLR` callback (torch ``CyclicLR`` semantics)."""

from keras_trainplus import _export
from keras_trainplus import _validation as v
from keras_trainplus.callbacks import _arguments
from keras_trainplus.callbacks.hyperparameter_scheduler import (
    HyperparameterScheduler,
)
from keras_trainplus.schedules.cyclical import Cyclical
from keras_trainplus.schedules.cyclical import serialize_scale_fn
from keras_trainplus.schedules.cyclical import with_scale_fn


@_export.register
class CyclicLR(HyperparameterScheduler):
    """Cyclical learning rate (Smith 2015) with torch ``CyclicLR`` semantics.

    Update ``i`` of `fit` uses torch's ``lr[i]`` and ``momentum[i]``:

    ```
    T = step_size_up + step_size_down
    cycle = floor(1 + i / T); x = 1 + i / T - cycle; r = step_size_up / T
    h = x / r if x <= r else (x - 1) / (r - 1)
    lr = base_lr + (max_lr - base_lr) * h * scale
    momentum = max_momentum - (max_momentum - base_momentum) * h * scale
    ```

    Steps, momentum, logs: [docs/presets.md](../docs/presets.md).

    Args:
        base_lr, max_lr: floats, 0 <= base_lr <= max_lr: the value at each
            cycle start, and at the top of the first cycle.
        step_size_up, step_size_down: positive numbers of updates of the
            rising and falling halves. Default `2000` and `None` (= up).
        mode, gamma: `"triangular"` (constant amplitude), `"triangular2"`
            (halved every cycle) or `"exp_range"` (scaled by ``gamma ** i``;
            gamma > 0, default `1.0`).
        scale_fn, scale_mode: a custom scale function replacing `mode`,
            and what it receives, as in `keras_trainplus.schedules.Cyclical`.
        cycle_momentum: bool. Defaults to `True`.
        base_momentum, max_momentum: floats, 0 <= base <= max < 1: the
            momentum at the LR peak and at cycle starts. `0.8`, `0.9`.
        verbose: int. Defaults to `0`.

    Example:

    ```python
    model.compile(keras.optimizers.SGD(momentum=0.9), loss="mse")
    model.fit(x, y, epochs=8, callbacks=[keras_trainplus.callbacks.CyclicLR(
        1e-3, 6e-3, step_size_up=4 * 100)])
    ```

    Raises:
        ValueError: for invalid arguments; at `fit`, momentum that cannot cycle.
    """

    def __init__(
        self,
        base_lr,
        max_lr,
        step_size_up=2000,
        step_size_down=None,
        mode="triangular",
        gamma=1.0,
        scale_fn=None,
        scale_mode="cycle",
        cycle_momentum=True,
        base_momentum=0.8,
        max_momentum=0.9,
        verbose=0,
    ):
        base_lr = v.target_value("learning_rate", base_lr, "base_lr")
        max_lr = v.target_value("learning_rate", max_lr, "max_lr")
        if max_lr < base_lr:
            v.fail("max_lr", max_lr, f">= `base_lr` ({base_lr})")
        self.cycle_momentum, base_momentum, max_momentum = (
            _arguments.momentum_range(
                cycle_momentum, base_momentum, max_momentum
            )
        )
        shape = dict(
            step_size_up=step_size_up,
            step_size_down=step_size_down,
            mode=mode,
            gamma=gamma,
            scale_fn=scale_fn,
            scale_mode=scale_mode,
        )
        schedules = {"learning_rate": Cyclical(base_lr, max_lr, **shape)}
        if self.cycle_momentum:
            schedules["momentum"] = Cyclical(
                max_momentum, base_momentum, **shape
            )
        # base/max are checked above: other values come from `scale_fn`
        options = None
        if scale_fn is not None:
            options = {t: {"argument": "scale_fn"} for t in schedules}
        super().__init__(
            schedules, origin="fit", verbose=verbose, options=options
        )
        lr = schedules["learning_rate"]
        self.base_lr = base_lr
        self.max_lr = max_lr
        self.step_size_up = lr.step_size_up
        self.step_size_down = lr.step_size_down
        self.mode = lr.mode
        self.gamma = lr.gamma
        self.scale_fn = scale_fn
        self.scale_mode = lr.scale_mode
        self.base_momentum = base_momentum
        self.max_momentum = max_momentum

    def get_config(self):
        return {
            "base_lr": self.base_lr,
            "max_lr": self.max_lr,
            "step_size_up": self.step_size_up,
            "step_size_down": self.step_size_down,
            "mode": self.mode,
            "gamma": self.gamma,
            "scale_fn": serialize_scale_fn(self.scale_fn),
            "scale_mode": self.scale_mode,
            "cycle_momentum": self.cycle_momentum,
            "base_momentum": self.base_momentum,
            "max_momentum": self.max_momentum,
            "verbose": self.verbose,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**with_scale_fn(config))
