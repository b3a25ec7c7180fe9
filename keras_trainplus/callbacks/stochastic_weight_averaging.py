"""`StochasticWeightAveraging`: SWA (Izmailov et al. 2018), Lightning's
callback with the annealing in-graph."""

import numbers
import warnings

import keras
from keras import ops

from keras_trainplus import _export
from keras_trainplus import _internals as internals
from keras_trainplus import _validation as v
from keras_trainplus.callbacks import _arguments
from keras_trainplus.callbacks import _averaging
from keras_trainplus.callbacks import _batch_norm_update
from keras_trainplus.callbacks.hyperparameter_scheduler import (
    HyperparameterScheduler,
)
from keras_trainplus.knobs import _weight_ema
from keras_trainplus.knobs._weight_averages import WeightAverages
from keras_trainplus.knobs.knob import Knob
from keras_trainplus.schedules.base_value import BaseValue
from keras_trainplus.schedules.join import Join
from keras_trainplus.schedules.swa_lr import SWALR


@_export.register
class StochasticWeightAveraging(HyperparameterScheduler):
    """Stochastic Weight Averaging (Izmailov et al. 2018, "Averaging Weights
    Leads to Wider Optima and Better Generalization"), Lightning's
    ``StochasticWeightAveraging`` with Keras's 0-based epochs.

    The weights at the end of epochs ``s, s+1, ..., last`` enter an
    equal-weight running average (torch's ``AveragedModel``) that the
    model holds after `fit`. With `swa_lrs`, from the first update of epoch
    ``s`` the learning rate follows torch's ``SWALR`` per update, in-graph:
    from the LR in use then (held) to `swa_lrs` over ``annealing_epochs x
    updates per epoch`` updates, then held (a driver preset: ``Join([
    BaseValue(), SWALR(...)])`` on ``"learning_rate"``). Logged:
    ``logs["swa_n_models"]``. More: [docs/weight_averaging.md](
    ../docs/weight_averaging.md).

    Args:
        swa_lrs: float > 0, or None (default: the LR is left to whatever
            schedule runs, e.g. cyclical or constant, as in the paper).
        swa_epoch_start: int >= 0 (the epoch ``s``) or float in (0, 1)
            (``s = int(swa_epoch_start x epochs)``). Defaults to `0.8`.
        annealing_epochs: int >= 0 (0 jumps to `swa_lrs`). Defaults to
            `10`.
        annealing_strategy: `"cos"` (default) or `"linear"`.
        update_bn: bool. After `fit`, recompute the BatchNormalization
            statistics of the averaged weights with one pass over the
            epoch's training data (a cumulative average over batches,
            biased variance), with a progress bar. Defaults to `True`.

    Example:

    ```python
    model.fit(x, y, epochs=20, callbacks=[
        keras_trainplus.callbacks.StochasticWeightAveraging(swa_lrs=0.01),
    ])
    ```

    Raises:
        ValueError: for an argument out of range; at `fit`, for an
            optimizer with ``use_ema=True``, or `swa_lrs` without a known
            number of steps per epoch.
    """

    def __init__(
        self,
        swa_lrs=None,
        swa_epoch_start=0.8,
        annealing_epochs=10,
        annealing_strategy="cos",
        update_bn=True,
    ):
        self.swa_lrs = v.positive("swa_lrs", swa_lrs, allow_none=True)
        self.swa_epoch_start = _check_start(swa_epoch_start)
        self.annealing_epochs = v.integer(
            "annealing_epochs", annealing_epochs, minimum=0
        )
        self.annealing_strategy = v.choice(
            "annealing_strategy", annealing_strategy, ("cos", "linear")
        )
        self.update_bn = v.boolean("update_bn", update_bn)
        super().__init__(_arguments.built_at_fit)

    _RUNTIME = HyperparameterScheduler._RUNTIME + ("_swa", "_link", "_anchor")

    def _reset_runtime(self):
        super()._reset_runtime()
        self._swa = None
        self._link = None
        self._n_models = 0
        self._averaged_through = -1
        self._anchor = None
        self._anchor_by_hand = False
        self._epoch = None
        self._resumed = False

    def start_epoch(self):
        """The epoch ``s`` of this `fit` (from `swa_epoch_start`)."""
        start = self.swa_epoch_start
        if isinstance(start, float):
            return int(start * (self.params or {}).get("epochs", 0))
        return start

    def _resolve_schedules(self):
        self.options = {"learning_rate": {"argument": "swa_lrs"}}
        start = self.start_epoch()
        if self.swa_lrs is None or start >= self.params.get("epochs", 0):
            return {}
        plan = self._plan()
        plan.length("StochasticWeightAveraging(swa_lrs=...)", _FIX)
        first = plan.updates_before(start)
        steps = plan.updates_before(start + self.annealing_epochs) - first
        self._anchor = _LRAnchor(self.model)
        anneal = _AnchoredSWALR(
            self.swa_lrs, steps, self.annealing_strategy, self._anchor
        )
        if first == 0:
            return {"learning_rate": anneal}
        return {"learning_rate": Join([BaseValue(), anneal], [first])}

    def on_train_begin(self, logs=None):
        model = self.model
        _weight_ema.check_no_keras_ema(model, "StochasticWeightAveraging")
        super().on_train_begin(logs)
        with _averaging.undo_on_error(self._guard):
            _averaging.claim_weights(self._guard, self, True, False)
            if self.start_epoch() >= self.params.get("epochs", 0):
                warnings.warn(
                    f"StochasticWeightAveraging starts at epoch "
                    f"{self.start_epoch()} (swa_epoch_start="
                    f"{self.swa_epoch_start!r}), but `fit` runs "
                    f"{self.params.get('epochs')} epochs: nothing is "
                    "averaged.",
                    stacklevel=2,
                )
            self._swa = WeightAverages(model, "swa")
            self._guard.add(self, self._abort_swa)
            if self._anchor is not None:
                self._guard.add(self, self._anchor.release)
                if not self._guard.after_epoch_begin(self._set_anchor):
                    self._anchor_by_hand = True
            self._link = _averaging.BackupLink("swa", self._state, self._load)
            self._resumed = self._link.attach(self)

    def on_epoch_begin(self, epoch, logs=None):
        if self._resumed:
            self._resumed = False
            if not self._link.check_resumed(self.model, "SWA"):
                self._n_models, self._averaged_through = 0, -1
        self._epoch = epoch
        super().on_epoch_begin(epoch, logs)
        if self._anchor_by_hand:
            self._set_anchor()

    def _set_anchor(self):
        """The anneal starts from the LR the first update of epoch s uses
        (written after every callback's `on_epoch_begin`), whatever writes
        the base later."""
        anchor = self._anchor
        if anchor.written or self._epoch < self.start_epoch():
            return
        anchor.write(self._bindings["learning_rate"].base())

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        self._average(epoch)
        if logs is not None:
            logs["swa_n_models"] = self._n_models

    def _average(self, epoch):
        """Adds the weights at the end of `epoch` to the average (once)."""
        if epoch < self.start_epoch() or epoch <= self._averaged_through:
            return
        self.model  # on JAX: sync the train state
        self._n_models += 1
        scale = 1.0 / self._n_models
        for w, a in zip(self._swa.weights, self._swa.averages):
            a.assign(a.value + (w.value - a.value) * ops.cast(scale, a.dtype))
        self._averaged_through = epoch

    def on_train_end(self, logs=None):
        if self._swa is not None:
            model = self.model
            if self._n_models > 0:
                self._swa.swap()  # the raw weights wait in the averages
                try:
                    if self.update_bn:
                        self._recompute_batch_norm(model)
                except BaseException:
                    self._swa.swap()  # an exception leaves the raw weights
                    raise
            self._remove()
        super().on_train_end(logs)

    def _recompute_batch_norm(self, model):
        if not _batch_norm_update.batch_norm_layers(model):
            return
        epoch_iterator = self._guard.epoch_iterator
        if epoch_iterator is None:
            warnings.warn(
                "StochasticWeightAveraging: the training data was not found, "
                "so the BatchNormalization statistics were not recomputed.",
                stacklevel=2,
            )
            return
        batches, steps = internals.fit_loop.training_batches(epoch_iterator)
        verbose = (self.params or {}).get("verbose", 1) == 1
        seen = _batch_norm_update.update_batch_norm(
            model, batches, steps, verbose
        )
        if seen == 0 or (steps is not None and seen < steps):
            warnings.warn(
                f"StochasticWeightAveraging: the pass over the training data "
                f"for the BatchNormalization statistics read {seen} batches"
                + (f" of {steps}" if steps is not None else "")
                + " (a one-shot generator is exhausted after `fit`: pass "
                "`update_bn=False` and recompute on your own data)."
                + (
                    " The statistics are the averaged ones." if not seen else ""
                ),
                stacklevel=2,
            )

    def _abort_swa(self):
        if self._swa is not None:
            self._remove()

    def _remove(self):
        self._link.detach()
        self._swa = None
        if self._anchor is not None:
            self._anchor.release()

    # -- state saved with BackupAndRestore ------------------------------------

    def _state(self, backup):
        if backup.save_freq == "epoch" and self._epoch is not None:
            self._average(self._epoch)  # saved at this epoch's end
        out = {
            "n_models": self._n_models,
            "averaged_through": self._averaged_through,
        }
        if self._anchor is not None and self._anchor.written:
            out["lr_anchor"] = float(self._anchor.knob)
        for i, array in enumerate(self._swa.numpy()):
            out[f"average_{i}"] = array
        return out

    def _load(self, arrays):
        count = sum(k.startswith("average_") for k in arrays)
        self._swa.load(
            [arrays[f"average_{i}"] for i in range(count)], "SWA state"
        )
        self._n_models = int(arrays["n_models"])
        self._averaged_through = int(arrays["averaged_through"])
        if self._anchor is not None and "lr_anchor" in arrays:
            self._anchor.write(float(arrays["lr_anchor"]))

    def get_config(self):
        return {
            "swa_lrs": self.swa_lrs,
            "swa_epoch_start": self.swa_epoch_start,
            "annealing_epochs": self.annealing_epochs,
            "annealing_strategy": self.annealing_strategy,
            "update_bn": self.update_bn,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class _LRAnchor:
    """The LR SWA's anneal starts from: a knob (hidden optimizer state on
    JAX) written once, at the first update of epoch s."""

    def __init__(self, model):
        self.model = model
        self.optimizers = internals.optimizer.optimizers_of(model.optimizer)
        lr = ops.convert_to_numpy(self.optimizers[0].learning_rate)
        self.knob = Knob(float(lr), name="swa_start_lr", model=model)
        self.written = False
        self._hidden = keras.backend.backend() == "jax"
        for opt in self.optimizers if self._hidden else []:
            internals.optimizer.attach_hidden_optimizer_state(
                opt, self.knob.variable
            )

    def write(self, value):
        self.knob.assign(value, model=self.model)
        self.written = True

    def release(self):
        for opt in self.optimizers if self._hidden else []:
            internals.optimizer.detach_hidden_optimizer_state(
                opt, self.knob.variable
            )
        self._hidden = False


class _AnchoredSWALR(SWALR):
    """`SWALR` from the anchor, not from the live base: a writer of the base
    after the anneal started (`ReduceLROnPlateau`) does not move it."""

    def __init__(self, swa_lr, anneal_steps, anneal_strategy, anchor):
        super().__init__(swa_lr, anneal_steps, anneal_strategy)
        self.anchor = anchor

    def _compute(self, m, step, base):
        knob = self.anchor.knob
        start = float(knob) if m.concrete else knob.read()
        return super()._compute(m, step, m.float(start))


def _check_start(value):
    """An epoch (int >= 0) or a fraction of the run in (0, 1)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        v.fail_type(
            "swa_epoch_start", value, "an int >= 0 or a float in (0, 1)"
        )
    if isinstance(value, numbers.Integral):
        return v.integer("swa_epoch_start", int(value), minimum=0)
    if not 0 < value < 1:
        v.fail("swa_epoch_start", value, "an int >= 0 or a float in (0, 1)")
    return float(value)


_FIX = "pass `swa_lrs=None`"
