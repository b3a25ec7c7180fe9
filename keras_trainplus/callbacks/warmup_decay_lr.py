"""`WarmupDecayLR` callback: warmup followed by a decay, the common recipes."""

import math

import numpy as np

from keras_trainplus import _export
from keras_trainplus import _validation as v
from keras_trainplus import schedules as S
from keras_trainplus.callbacks.hyperparameter_scheduler import (
    HyperparameterScheduler,
)

_DECAYS = (
    "constant",
    "linear",
    "cosine",
    "inverse_sqrt",
    "step",
    "exponential",
)


@_export.register
class WarmupDecayLR(HyperparameterScheduler):
    """Learning-rate warmup followed by a decay, evaluated per update in-graph.

    Update ``i`` of `fit` ([docs/presets.md](../docs/presets.md)) uses:

    * warmup, ``i < warmup_steps``: `initial_lr` -> `peak_lr` (reached at
      update ``warmup_steps``), linearly or geometrically (`warmup`);
    * then, with ``u = i - warmup_steps`` and ``s = decay_steps``, by
      `decay`: `"constant"`: `peak_lr`; `"linear"` (BERT) and `"cosine"`:
      linearly or half-cosine to `final_lr` at the last update;
      `"inverse_sqrt"`: ``peak_lr * sqrt(s / (s + u))``; `"step"`:
      ``peak_lr * decay_rate ** floor(u / s)``; `"exponential"`:
      ``peak_lr * decay_rate ** (u / s)``. Transformer: `.transformer()`.

    Args:
        peak_lr: float > 0. Learning rate at the end of the warmup.
        warmup_steps: int >= 0, or a fraction in (0, 1) of the run. `0`.
        decay: one of the values above. Defaults to `"constant"`.
        total_steps: int, or `None` (the run's length, from `fit`).
        final_lr: float >= 0, the end of `"linear"`/`"cosine"`. `0.0`.
        warmup: `"linear"` or `"exponential"`. Defaults to `"linear"`.
        initial_lr: float, the start (`0.0`; > 0 needed for exponential).
        decay_steps, decay_rate: int s >= 1 and float > 0 of
            `"inverse_sqrt"` (s defaults to `warmup_steps`), `"step"` (rate
            `0.1`) and `"exponential"` (rate `0.5`).
        verbose: int. Defaults to `0`.

    Example:

    ```python
    # BERT: 10% linear warmup, then linear decay to 0 over the rest of fit.
    cb = keras_trainplus.callbacks.WarmupDecayLR(
        peak_lr=5e-5, warmup_steps=0.1, decay="linear")
    model.fit(x, y, epochs=3, callbacks=[cb])
    ```

    Raises:
        ValueError: for invalid arguments; at `fit`, an unknown length or a
            warmup not shorter than the run.
    """

    def __init__(
        self,
        peak_lr,
        warmup_steps=0,
        decay="constant",
        total_steps=None,
        final_lr=0.0,
        warmup="linear",
        initial_lr=None,
        decay_steps=None,
        decay_rate=None,
        verbose=0,
    ):
        self.peak_lr = v.positive("peak_lr", peak_lr)
        self.warmup_steps = _warmup_steps(warmup_steps)
        self.decay = v.choice("decay", decay, _DECAYS)
        self.total_steps = v.integer(
            "total_steps", total_steps, minimum=1, allow_none=True
        )
        self.final_lr = v.real("final_lr", final_lr, minimum=0)
        self.warmup = v.choice("warmup", warmup, ("linear", "exponential"))
        self.initial_lr = _initial_lr(initial_lr, self.warmup)
        self.decay_steps = v.integer(
            "decay_steps", decay_steps, minimum=1, allow_none=True
        )
        if self.decay in ("step", "exponential") and decay_steps is None:
            raise ValueError(
                f"decay={decay!r} needs `decay_steps`. Received: "
                "decay_steps=None"
            )
        default_rate = {"step": 0.1, "exponential": 0.5}.get(self.decay)
        self.decay_rate = v.positive(
            "decay_rate",
            default_rate if decay_rate is None else decay_rate,
            allow_none=True,
        )
        needs_total = self.decay in ("linear", "cosine") or isinstance(
            self.warmup_steps, float
        )
        # Known length (or none needed): build now; else for each `fit`.
        super().__init__(
            self._schedules
            if needs_total and self.total_steps is None
            else self._schedules(self.total_steps),
            origin="fit",
            verbose=verbose,
        )

    @classmethod
    def transformer(cls, d_model, warmup_steps=4000, scale=1.0, verbose=0):
        """The Transformer ("Noam") schedule, exactly.

        ``lr(i) = scale * d_model**-0.5 * min(t**-0.5, t * warmup**-1.5)``
        with ``t = i + 1``: linear from ``peak / warmup`` to the peak
        ``scale * (d_model * warmup)**-0.5`` at update ``warmup - 1``, then
        proportional to ``t**-0.5``.

        Args:
            d_model: int >= 1. Model width.
            warmup_steps: int >= 2. Defaults to `4000`.
            scale: float > 0. Multiplier. Defaults to `1.0`.
        """
        d_model = v.integer("d_model", d_model, minimum=1)
        w = v.integer("warmup_steps", warmup_steps, minimum=2)
        scale = v.positive("scale", scale)
        peak = scale / math.sqrt(d_model * w)
        return cls(
            peak,
            warmup_steps=w - 1,
            decay="inverse_sqrt",
            initial_lr=peak / w,
            decay_steps=w,
            verbose=verbose,
        )

    def _warmup_length(self, total):
        if isinstance(self.warmup_steps, float):
            return int(round(self.warmup_steps * total))
        return self.warmup_steps

    def _build(self, total):
        w = self._warmup_length(total) if total else self.warmup_steps
        peak = self.peak_lr
        if self.decay in ("linear", "cosine"):
            if total - w < 1:
                raise ValueError(
                    f"The warmup ({w} steps) must be shorter than the run "
                    f"({total} steps) for decay={self.decay!r}."
                )
            kind = S.Linear if self.decay == "linear" else S.Cosine
            after = kind(peak, self.final_lr, total - w)
        elif self.decay == "inverse_sqrt":
            after = S.InverseSqrtDecay(peak, self.decay_steps or max(w, 1))
        elif self.decay == "step":
            after = S.StepDecay(peak, self.decay_steps, self.decay_rate)
        elif self.decay == "exponential":
            after = S.ExponentialDecay(peak, self.decay_rate, self.decay_steps)
        else:
            after = S.Constant(peak)
        if w == 0:
            return after
        if self.warmup == "linear":
            ramp = S.Linear(self.initial_lr, peak, w)
        else:
            ramp = S.Geometric(self.initial_lr, peak, w)
        return S.Join([ramp, after], [w])

    def _schedules(self, total):
        """The schedules for a run of `total` updates (None: not needed)."""
        return {"learning_rate": self._build(total)}

    def get_config(self):
        return {
            "peak_lr": self.peak_lr,
            "warmup_steps": self.warmup_steps,
            "decay": self.decay,
            "total_steps": self.total_steps,
            "final_lr": self.final_lr,
            "warmup": self.warmup,
            "initial_lr": self.initial_lr,
            "decay_steps": self.decay_steps,
            "decay_rate": self.decay_rate,
            "verbose": self.verbose,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _warmup_steps(warmup_steps):
    """An int >= 0, or a float in (0, 1): a fraction of the run."""
    warmup_steps = v.scalar(warmup_steps)
    if isinstance(warmup_steps, (float, np.floating)) and (
        0 < warmup_steps < 1
    ):
        return float(warmup_steps)
    if v.is_integer(warmup_steps, 0):
        return int(warmup_steps)
    v.fail(
        "warmup_steps",
        warmup_steps,
        "an int >= 0 or a float in (0, 1) (a fraction of the run)",
    )


def _initial_lr(initial_lr, warmup):
    """>= 0 (None: 0); > 0 for an exponential warmup."""
    if initial_lr is None and warmup == "exponential":
        raise ValueError(
            "Exponential warmup needs a positive `initial_lr` (a "
            "geometric ramp cannot start at 0). Received: initial_lr=None"
        )
    value = v.real(
        "initial_lr", 0.0 if initial_lr is None else initial_lr, minimum=0
    )
    if warmup == "exponential":
        v.positive("initial_lr", value)
    return value
