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

    Update ``i`` of the `fit` run uses exactly torch's ``lr[i]`` (and
    ``momentum[i]``; a preset of the driver,
    [docs/architecture.md](../docs/architecture.md)):

    ```
    T = step_size_up + step_size_down
    cycle = floor(1 + i / T); x = 1 + i / T - cycle; r = step_size_up / T
    h = x / r if x <= r else (x - 1) / (r - 1)
    lr = base_lr + (max_lr - base_lr) * h * scale
    momentum = max_momentum - (max_momentum - base_momentum) * h * scale
    ```

    `"triangular"` keeps the amplitude, `"triangular2"` halves it every
    cycle, `"exp_range"` scales it by ``gamma ** i``. A built-in `mode`
    fixes its own scale mode (torch ignores `scale_mode` then, and so do
    we). Leslie Smith recommends `step_size_up` of 2-10 epochs' worth of
    steps and stopping at the end of a cycle.

    Momentum cycling (on by default, as in torch) moves SGD's `momentum` or
    the `beta_1` of Adam, AdamW, Adamax, Lamb or Lion inversely to the
    learning rate. Keras creates SGD momentum slots only for
    ``momentum > 0``, so SGD must be created with momentum (e.g.
    ``SGD(momentum=0.9)``); other optimizers need ``cycle_momentum=False``.

    Logged: ``logs["learning_rate"]`` (and ``logs["momentum"]``) of each
    epoch's last update. Step 0 is the first update of the `fit` call.

    Args:
        base_lr: float >= 0. Lower bound, the value at each cycle start.
        max_lr: float >= base_lr. Upper bound of the first cycle.
        step_size_up: positive number of updates in the rising half.
            Defaults to `2000`.
        step_size_down: updates in the falling half; `None` means
            `step_size_up`.
        mode: `"triangular"`, `"triangular2"` or `"exp_range"`.
        gamma: float > 0, the `"exp_range"` base. Defaults to `1.0`.
        scale_fn: custom scale function of one number (overrides `mode`): a
            keras_trainplus schedule, or a Python callable (registered with
            `keras.saving.register_keras_serializable` to serialize).
        scale_mode: `"cycle"` or `"iterations"`: the argument of `scale_fn`.
        cycle_momentum: bool. Defaults to `True`.
        base_momentum: float in [0, 1). Momentum at the LR peak.
            Defaults to `0.8`.
        max_momentum: float in [base_momentum, 1). Momentum at cycle
            starts. Defaults to `0.9`.
        verbose: int. Defaults to `0`.

    Example:

    ```python
    model.compile(keras.optimizers.SGD(momentum=0.9), loss="mse")
    model.fit(x, y, epochs=8, callbacks=[
        keras_trainplus.callbacks.CyclicLR(1e-3, 6e-3, step_size_up=4 * 100),
    ])
    ```

    Raises:
        ValueError: for `max_lr < base_lr`, non-positive step sizes, an
            unknown mode, momentum bounds outside [0, 1) or out of order,
            and (at `fit`) for an optimizer whose momentum cannot cycle.
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
