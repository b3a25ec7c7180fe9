"""`LRFinder`: Leslie Smith's learning-rate range test, leaving no trace."""

import math

import numpy as np

from keras_trainplus import _export
from keras_trainplus import _internals as internals
from keras_trainplus import _validation as v
from keras_trainplus.callbacks.hyperparameter_scheduler import (
    HyperparameterScheduler,
)
from keras_trainplus.callbacks.lr_finder._loss_recorder import LossRecorder
from keras_trainplus.callbacks.lr_finder._snapshot import Snapshot
from keras_trainplus.callbacks.lr_finder.lr_finder_result import LRFinderResult
from keras_trainplus.knobs.knob import _strategy_scope
from keras_trainplus.schedules.geometric import Geometric
from keras_trainplus.schedules.linear import Linear


@_export.register
class LRFinder(HyperparameterScheduler):
    """Learning-rate range test (Leslie Smith) as a `fit` callback.

    During `fit` the learning rate rises from `start_lr` to `end_lr` over
    `num_steps` updates, geometrically (``mode="exp"``: update ``i`` uses
    ``start_lr * (end_lr / start_lr) ** (i / (num_steps - 1))``) or
    linearly, and each update's own loss is recorded in the compiled step.
    It stops after `num_steps` updates, on a non-finite loss, or when the
    smoothed loss exceeds `divergence_threshold` times the best one. At the
    end of `fit` (also after an exception or Ctrl-C) the model, optimizer,
    metrics and random generators are exactly as before; `finder.result`
    is an `LRFinderResult`. Details: [docs/lr_finder.md](
    ../docs/lr_finder.md).

    `keras_trainplus.find_lr(model, x, y, ...)` runs this for you.

    Args:
        start_lr: float > 0. First learning rate. Defaults to `1e-7`.
        end_lr: float > start_lr. Last learning rate. Defaults to `10.0`.
        num_steps: int >= 2. Number of updates in the range. Defaults to
            `100`.
        mode: `"exp"` (geometric) or `"linear"`. Defaults to `"exp"`.
        smoothing: float in [0, 1), the EMA factor of the smoothed loss
            (bias-corrected). Defaults to `0.98`.
        divergence_threshold: float > 1, or `None` to never stop on
            divergence. Defaults to `4.0`.
        restore: bool. Restore the model after the test. Defaults to
            `True`.
        verbose: int. 1 prints the suggestions at the end. Defaults to `0`.

    Example:

    ```python
    finder = keras_trainplus.callbacks.LRFinder(1e-6, 1.0, num_steps=200)
    model.fit(x, y, epochs=5, callbacks=[finder])  # stops after 200 steps
    print(finder.result.suggestion())
    ```

    Raises:
        ValueError: for invalid arguments.
    """

    def __init__(
        self,
        start_lr=1e-7,
        end_lr=10.0,
        num_steps=100,
        mode="exp",
        smoothing=0.98,
        divergence_threshold=4.0,
        restore=True,
        verbose=0,
    ):
        self.start_lr = v.positive("start_lr", start_lr)
        self.end_lr = v.positive("end_lr", end_lr)
        if self.end_lr <= self.start_lr:
            raise ValueError(
                f"Argument `end_lr` must be > `start_lr` ({self.start_lr}). "
                f"Received: end_lr={end_lr!r}"
            )
        self.num_steps = v.integer("num_steps", num_steps, minimum=2)
        self.mode = v.choice("mode", mode, ("exp", "linear"))
        self.smoothing = v.real(
            "smoothing", smoothing, minimum=0, maximum=1, max_inclusive=False
        )
        self.divergence_threshold = v.real(
            "divergence_threshold",
            divergence_threshold,
            minimum=1,
            min_inclusive=False,
            allow_none=True,
        )
        self.restore = v.boolean("restore", restore)
        # The range is the driver's learning-rate schedule; it replaces an
        # optimizer's own schedule while installed (all is restored).
        super().__init__(
            {"learning_rate": self.schedule},
            origin="fit",
            verbose=verbose,
            options={"learning_rate": {"replace_schedule": True}},
        )
        self.result = None

    def _reset_runtime(self):
        super()._reset_runtime()
        self._snapshot = None
        self._recorder = None
        self._losses = []
        self._stop_reason = None
        self._updates = 0
        self._epoch_base = 0
        self._ema = 0.0
        self._smoothed_first = None
        self._smoothed_best = math.inf
        self._smoothed_last = None
        self._compute_loss_token = None

    def __deepcopy__(self, memo):
        return type(self).from_config(self.get_config())

    @property
    def schedule(self):
        """The range as a keras_trainplus schedule of the step."""
        cls = Geometric if self.mode == "exp" else Linear
        return cls(self.start_lr, self.end_lr, self.num_steps - 1)

    # -- lifecycle ----------------------------------------------------------

    def on_train_begin(self, logs=None):
        self.result = None
        super().on_train_begin(logs)  # the LR knob; claims the LR
        if self._guard.accumulation_factors() is not None:
            self._guard.abort()
            raise ValueError(
                "LRFinder cannot run with a gradient accumulation schedule "
                "(GradientAccumulationScheduler or the target "
                "'gradient_accumulation'): its updates would mix "
                "micro-batch counts. For a range test at an effective "
                "batch of k batches, create the optimizer with "
                "`gradient_accumulation_steps=k`."
            )
        if self.restore:
            self._snapshot = Snapshot(self.model)

    def _install(self, epoch):
        """The range (by the driver) and the loss recorder, at the first
        epoch, so that an exception anywhere after it is undone."""
        super()._install(epoch)
        model = self.model
        optimizers = internals.optimizer.optimizers_of(model.optimizer)
        self._accumulation = internals.optimizer.accumulation_steps(
            optimizers[0]
        )
        self._micro_offset = internals.optimizer.micro_iterations(optimizers[0])
        with _strategy_scope(model):
            self._recorder = LossRecorder(
                self.num_steps,
                self._accumulation,
                self._micro_offset % self._accumulation,
            )
        internals.trainer.attach_metric(model, self._recorder)
        recorder = self._recorder

        def recording(previous):
            def compute_loss(
                x=None, y=None, y_pred=None, sample_weight=None, training=True
            ):
                loss = previous(x, y, y_pred, sample_weight, training=training)
                if training:
                    recorder.record(loss)
                return loss

            return compute_loss

        self._compute_loss_token = internals.trainer.wrap_compute_loss(
            model, recording
        )
        self._guard.rebuild_train_function()

    def _collect(self, count=None, losses=None):
        if losses is None:
            count, losses = self._recorder.read()
        new = [float(x) for x in losses[len(self._losses) : count]]
        beta = self.smoothing
        for loss in new:
            self._losses.append(loss)
            k = len(self._losses)
            self._ema = beta * self._ema + (1.0 - beta) * loss
            value = self._ema / (1.0 - beta**k)
            if self._smoothed_first is None:
                self._smoothed_first = value
            self._smoothed_best = (
                min(self._smoothed_best, value) if value == value else value
            )
            self._smoothed_last = value
        return new

    def on_epoch_begin(self, epoch, logs=None):
        super().on_epoch_begin(epoch, logs)  # installs at the first epoch
        self._epoch_base = self._updates

    def _print_values(self, epoch):
        """The suggestions are printed at the end instead."""

    def on_train_batch_end(self, batch, logs=None):
        self.model  # on JAX: sync the train state before reading
        # `batch` is the last step of the executed block: the number of
        # updates is known on the host, so one read (the losses) suffices.
        self._updates = self._epoch_base + int(batch) + 1  # micro-batches
        k = self._accumulation
        phase = self._micro_offset % k
        count = min((phase + self._updates) // k, self.num_steps)
        if count <= len(self._losses):
            return
        if not self._collect(count, self._recorder.read_losses()):
            return
        reason = self._should_stop()
        if reason is not None:
            self._stop_reason = reason
            self.model.stop_training = True

    def _should_stop(self):
        if len(self._losses) >= self.num_steps:
            return "completed"
        if not math.isfinite(self._losses[-1]):
            return "non-finite loss"
        if self.divergence_threshold is None:
            return None
        best, current = self._smoothed_best, self._smoothed_last
        thr = self.divergence_threshold
        if best > 0:
            diverged = current > thr * best
        else:
            diverged = current > best + (thr - 1) * abs(self._smoothed_first)
        return "diverged" if diverged else None

    def on_train_end(self, logs=None):
        installed = self._installed
        super().on_train_end(logs)  # the range comes off
        if installed:
            self._finish()

    def _abort(self):
        """`fit` ended by an exception: keep what was recorded, restore."""
        if self._installed:
            super()._abort()  # the range comes off
            self._finish()
            if self._snapshot is not None:
                # JAX's `fit` finalizes the optimizer after this (EMA).
                internals.optimizer_update.skip_next_finalize(
                    self.model.optimizer
                )

    def _finish(self):
        model = self.model
        self._collect()
        n = len(self._losses)
        steps = np.arange(n)
        lrs = np.array([float(self.schedule(int(i))) for i in steps])
        self.result = LRFinderResult(
            lrs=lrs,
            losses=np.asarray(self._losses, np.float64),
            smoothing=self.smoothing,
            stop_reason=self._stop_reason or "interrupted",
            start_lr=self.start_lr,
            end_lr=self.end_lr,
            num_steps=self.num_steps,
            mode=self.mode,
        )
        # The learning rate of before the test (the range was a program).
        self._bindings["learning_rate"].restore_original()
        internals.trainer.unwrap_compute_loss(model, self._compute_loss_token)
        internals.trainer.detach_metric(model, self._recorder)
        if self._snapshot is not None:
            self._snapshot.restore()
        else:
            internals.trainer.rebuild_train_function(model)
        if self.verbose and n:
            text = ", ".join(
                f"{k}={val:.3g}" for k, val in self.result.suggestions().items()
            )
            print(
                f"\nLRFinder: {n} updates, {self.result.stop_reason}; "
                f"suggested learning rates: {text}"
            )

    # -- config -------------------------------------------------------------

    def get_config(self):
        return {
            "start_lr": self.start_lr,
            "end_lr": self.end_lr,
            "num_steps": self.num_steps,
            "mode": self.mode,
            "smoothing": self.smoothing,
            "divergence_threshold": self.divergence_threshold,
            "restore": self.restore,
            "verbose": self.verbose,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
