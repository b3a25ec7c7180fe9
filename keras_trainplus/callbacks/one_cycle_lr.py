"""`OneCycleLR` callback (torch ``OneCycleLR`` semantics)."""

from keras_trainplus import _export
from keras_trainplus import _validation as v
from keras_trainplus.callbacks import _arguments
from keras_trainplus.callbacks.hyperparameter_scheduler import (
    HyperparameterScheduler,
)
from keras_trainplus.schedules.one_cycle import OneCycle


@_export.register
class OneCycleLR(HyperparameterScheduler):
    """The 1cycle policy (Smith 2018) with torch ``OneCycleLR`` semantics.

    The learning rate rises from ``max_lr / div_factor`` to `max_lr` until
    update ``pct_start * total_steps - 1``, then falls to
    ``max_lr / div_factor / final_div_factor`` at the last update
    ``total_steps - 1`` (``three_phase=True``: back down to the initial
    value, then an annihilation phase, as in Smith's paper). Momentum (SGD
    `momentum` or Adam-family `beta_1`) moves inversely between
    `max_momentum` and `base_momentum`.

    Update ``i`` of `fit` uses torch's ``lr[i]`` exactly. `total_steps`
    defaults to ``epochs * steps_per_epoch``, else the run's length; steps,
    momentum, logs: [docs/presets.md](../docs/presets.md).

    Args:
        max_lr: float > 0. Peak learning rate.
        total_steps: int >= 2, or `None`.
        epochs, steps_per_epoch: ints >= 1, both or neither (`None`).
        pct_start: float in (0, 1). Defaults to `0.3`.
        anneal_strategy: `"cos"` or `"linear"`. Defaults to `"cos"`.
        cycle_momentum: bool. Defaults to `True`.
        base_momentum: float in [0, 1). Defaults to `0.85`.
        max_momentum: float in [base_momentum, 1). Defaults to `0.95`.
        div_factor: float > 0. Defaults to `25.0`.
        final_div_factor: float > 0. Defaults to `1e4`.
        three_phase: bool. Defaults to `False`.
        verbose: int. Defaults to `0`.

    Example:

    ```python
    model.compile(keras.optimizers.AdamW(), loss="mse")
    model.fit(x, y, epochs=10,
              callbacks=[keras_trainplus.callbacks.OneCycleLR(max_lr=3e-3)])
    ```

    Raises:
        ValueError: for invalid arguments or a cycle too short for its
            phases; at `fit`, for a run longer than `total_steps` or unknown.
    """

    def __init__(
        self,
        max_lr,
        total_steps=None,
        epochs=None,
        steps_per_epoch=None,
        pct_start=0.3,
        anneal_strategy="cos",
        cycle_momentum=True,
        base_momentum=0.85,
        max_momentum=0.95,
        div_factor=25.0,
        final_div_factor=1e4,
        three_phase=False,
        verbose=0,
    ):
        self.max_lr = v.positive("max_lr", max_lr)
        self.total_steps, self.epochs, self.steps_per_epoch = (
            _arguments.run_length(total_steps, epochs, steps_per_epoch)
        )
        self.pct_start = v.real(
            "pct_start",
            pct_start,
            minimum=0,
            maximum=1,
            min_inclusive=False,
            max_inclusive=False,
        )
        self.anneal_strategy = v.choice(
            "anneal_strategy", anneal_strategy, ("cos", "linear")
        )
        self.cycle_momentum, self.base_momentum, self.max_momentum = (
            _arguments.momentum_range(
                cycle_momentum, base_momentum, max_momentum
            )
        )
        self.div_factor = v.positive("div_factor", div_factor)
        self.final_div_factor = v.positive("final_div_factor", final_div_factor)
        self.three_phase = v.boolean("three_phase", three_phase)
        total = self._configured_total()
        # Known length: build (and validate) now; else for each `fit`.
        super().__init__(
            self._schedules if total is None else self._schedules(total),
            origin="fit",
            verbose=verbose,
        )

    def _configured_total(self):
        if self.total_steps is not None:
            return self.total_steps
        if self.epochs is not None:
            return self.epochs * self.steps_per_epoch
        return None

    def _schedules(self, total):
        """The schedules for a run of `total` updates."""
        self._total = total
        out = {
            "learning_rate": OneCycle(
                self.max_lr,
                total,
                self.pct_start,
                self.anneal_strategy,
                self.div_factor,
                self.final_div_factor,
                self.three_phase,
            )
        }
        if self.cycle_momentum:
            out["momentum"] = OneCycle.momentum(
                self.base_momentum,
                self.max_momentum,
                total,
                self.pct_start,
                self.anneal_strategy,
                self.three_phase,
            )
        return out

    def _check_plan(self, first_step, last_step):
        if last_step is not None and last_step >= self._total:
            raise ValueError(
                f"OneCycleLR was set up for total_steps={self._total} "
                f"updates, but this `fit` runs updates {first_step} to "
                f"{last_step}. Pass `total_steps=None` to take the length "
                "from `fit`, or make `total_steps` match epochs x steps per "
                "epoch."
            )

    def get_config(self):
        return {
            "max_lr": self.max_lr,
            "total_steps": self.total_steps,
            "epochs": self.epochs,
            "steps_per_epoch": self.steps_per_epoch,
            "pct_start": self.pct_start,
            "anneal_strategy": self.anneal_strategy,
            "cycle_momentum": self.cycle_momentum,
            "base_momentum": self.base_momentum,
            "max_momentum": self.max_momentum,
            "div_factor": self.div_factor,
            "final_div_factor": self.final_div_factor,
            "three_phase": self.three_phase,
            "verbose": self.verbose,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
