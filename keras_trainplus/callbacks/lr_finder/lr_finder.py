"""`LRFinder`: Leslie Smith's learning-rate range test, leaving no trace."""

import math
import warnings

import keras
import numpy as np
from keras import ops

from keras_trainplus import _cluster
from keras_trainplus import _export
from keras_trainplus import _internals as internals
from keras_trainplus import _validation as v
from keras_trainplus.callbacks import _fit_guard
from keras_trainplus.callbacks.lr_finder.lr_finder_result import LRFinderResult
from keras_trainplus.knobs.knob import _strategy_scope
from keras_trainplus.schedules.geometric import Geometric
from keras_trainplus.schedules.linear import Linear


class _LossRecorder(keras.metrics.Metric):
    """Writes every update's own loss into a buffer, inside the compiled
    step. Attached as a model metric so that its variables travel with the
    JAX train state; under tf.distribute each replica adds its share of the
    loss (`aggregation="sum"`), so reading it gives the global loss. With
    gradient accumulation (`accumulation` micro-batches per update) entry
    ``i`` is the mean loss of update ``i``'s micro-batches."""

    def __init__(self, size, accumulation=1, phase=0):
        super().__init__(name="keras_trainplus_lr_finder")
        self.size = int(size)
        self.accumulation = int(accumulation)
        self.phase = int(phase)  # micro-batches accumulated before the test
        self.losses = self.add_variable(
            shape=(self.size,),
            initializer="zeros",
            aggregation="sum",
            name="losses",
        )
        self.count = self.add_variable(
            shape=(),
            dtype="int32",
            initializer="zeros",
            aggregation="only_first_replica",
            name="count",
        )

    def record(self, loss):
        count = ops.copy(self.count.value)
        k = self.accumulation
        index = count if k == 1 else ops.floor_divide(count + self.phase, k)
        hit = ops.equal(ops.arange(self.size, dtype="int32"), index)
        loss = ops.cast(ops.reshape(loss, ()), self.losses.dtype)
        if k == 1:
            new = ops.where(hit, loss, self.losses.value)
        else:
            new = ops.where(
                hit, self.losses.value + loss / k, self.losses.value
            )
        self.losses.assign(new)
        self.count.assign(count + 1)

    def update_state(self, *args, **kwargs):
        """Unused: `record` is called from the wrapped `compute_loss`."""

    def result(self):
        return {}  # nothing in the logs

    def reset_state(self):
        """Kept across the per-epoch metric reset of `fit`."""

    def read(self):
        count = (
            int(ops.convert_to_numpy(self.count)) + self.phase
        ) // self.accumulation
        return min(count, self.size), self.read_losses()

    def read_losses(self):
        return np.array(ops.convert_to_numpy(self.losses), np.float64)


@_export.register
class LRFinder(keras.callbacks.Callback):
    """Learning-rate range test (Leslie Smith) as a `fit` callback.

    During `fit` the learning rate rises from `start_lr` to `end_lr` over
    `num_steps` updates, geometrically (``mode="exp"``, update ``i`` uses
    ``start_lr * (end_lr / start_lr) ** (i / (num_steps - 1))``) or
    linearly. Each update's own batch loss is recorded inside the compiled
    step, not Keras's running mean of `logs["loss"]`, and the LR of update
    ``i`` is exactly the range's ``i``-th value with any
    `steps_per_execution`, on every backend and under `tf.distribute`.

    The test stops after `num_steps` updates, on a non-finite loss, or when
    the smoothed loss exceeds `divergence_threshold` times the best one
    (for losses that reach 0 or below: the best one plus
    ``(divergence_threshold - 1)`` times the first one's magnitude).
    With `steps_per_execution > 1` a stop takes effect at the end of the
    current block; the extra updates are not recorded.

    At the end of `fit` the model is exactly as it was before: all model
    variables (weights, non-trainable state, seed generators), all optimizer
    variables (slots, `iterations`, learning rate), metric states,
    `model.history`, and the random generators (Python, NumPy, torch, Keras's
    global one, TensorFlow's op-seed counter), so continuing training gives
    the same results as never having run the test, also when `fit` ends by
    an exception or Ctrl-C (then ``result.stop_reason == "interrupted"``
    and the losses recorded so far stay readable). With gradient
    accumulation, `num_steps` counts real updates and each update's loss
    is the mean over its micro-batches. Everything is kept in memory; no
    file is written. The result is `finder.result`, an
    `LRFinderResult` with the curve, suggestions and a plot.

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
        super().__init__()
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
        self.verbose = v.integer("verbose", verbose, minimum=0)
        self.result = None
        self._reset_runtime()

    def _reset_runtime(self):
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
        self._installed = False
        self._compute_loss_token = None
        self._guard = None

    def __deepcopy__(self, memo):
        return type(self).from_config(self.get_config())

    @property
    def schedule(self):
        """The range as a keras_trainplus schedule of the step."""
        cls = Geometric if self.mode == "exp" else Linear
        return cls(self.start_lr, self.end_lr, self.num_steps - 1)

    # -- lifecycle ----------------------------------------------------------

    def on_train_begin(self, logs=None):
        self._reset_runtime()
        self.result = None
        model = self.model
        _cluster.check_strategy_support(model, "LRFinder")
        self._guard = _fit_guard.guard_for(self)
        for opt in internals.optimizer.optimizers_of(model.optimizer):
            self._guard.claim(
                ("learning_rate", id(opt)),
                self,
                None,
                "owns",
                f"the learning rate of optimizer {opt.name!r}",
            )
        if self.restore:
            self._snapshot = _Snapshot(model)

    def _install(self):
        """Installs the range and the loss recorder (at the first epoch, so
        that an exception anywhere after it is undone by the guard)."""
        model = self.model
        optimizers = internals.optimizer.optimizers_of(model.optimizer)
        self._guard.add(self, self._abort)
        offset = int(ops.convert_to_numpy(optimizers[0].iterations))
        schedule = self.schedule

        def program(step, lr_variable):
            return schedule.evaluate(step - offset)

        for opt in optimizers:
            internals.optimizer.set_learning_rate_program(
                opt, program, needs_variable=False
            )
        self._accumulation = internals.optimizer.accumulation_steps(
            optimizers[0]
        )
        self._micro_offset = internals.optimizer.micro_iterations(optimizers[0])
        with _strategy_scope(model):
            self._recorder = _LossRecorder(
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
        self._installed = True

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
        if not self._installed:
            self.model  # on JAX: sync the train state first
            self._install()
        self._epoch_base = self._updates

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
        if self._installed:
            self._finish()
        if self._guard is not None:
            self._guard.done(self)

    def _abort(self):
        """`fit` ended by an exception: keep what was recorded, restore."""
        if self._installed:
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
        for opt in internals.optimizer.optimizers_of(model.optimizer):
            internals.optimizer.set_learning_rate_program(opt, None)
        internals.trainer.unwrap_compute_loss(model, self._compute_loss_token)
        internals.trainer.detach_metric(model, self._recorder)
        if self._snapshot is not None:
            self._snapshot.restore()
        else:
            internals.trainer.rebuild_train_function(model)
        self._installed = False
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


class _Snapshot:
    """Everything `fit` can change, kept in memory (see `LRFinder`).

    An optimizer that was never used has no slots yet (Keras creates them
    at its first update); it is built here first, in its initial state, so
    the slots the test would create are restored too. Metric variables that
    `fit` creates later are reset; model variables created during the test
    (a model built by its first batch) cannot be restored, which is
    reported with a warning.
    """

    def __init__(self, model):
        self.model = model
        opt = model.optimizer
        if not getattr(opt, "built", True):
            with _strategy_scope(model):
                opt.build(model.trainable_variables)
        self.variables = _values(model.variables)
        self.metrics = _values(model.metrics_variables)
        self.optimizer = _values(opt.variables)
        self.known = {
            id(v) for v, _ in self.variables + self.metrics + self.optimizer
        }
        self.rng = internals.random_state.snapshot_rng()
        self.history = getattr(model, "history", None)
        self.train_function = model.train_function

    def restore(self):
        model = self.model
        _assign(model.variables, self.variables)
        _assign(model.metrics_variables, self.metrics)
        _assign(model.optimizer.variables, self.optimizer)
        for metric in model.metrics:
            if any(id(v) not in self.known for v in metric.variables):
                metric.reset_state()
        new = [
            v.path
            for v in list(model.variables) + list(model.optimizer.variables)
            if id(v) not in self.known
        ]
        if new:
            warnings.warn(
                "LRFinder: these variables were created during the range "
                f"test and keep their trained values: {new[:5]}"
                f"{' ...' if len(new) > 5 else ''}. Build the model (e.g. "
                "with `keras.Input`) before running the test to restore "
                "everything.",
                stacklevel=3,
            )
        internals.random_state.restore_rng(self.rng)
        model.history = self.history
        # The train function of before the test: no retrace for the next fit.
        model.train_function = self.train_function


def _values(variables):
    return [(v, np.array(ops.convert_to_numpy(v))) for v in variables]


def _assign(variables, saved):
    current = {id(v) for v in variables}
    for var, value in saved:
        if id(var) in current:
            var.assign(value)
