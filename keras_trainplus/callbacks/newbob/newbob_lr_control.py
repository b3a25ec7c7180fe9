"""`NewbobLRControl`: RETURNN's learning-rate control as a Keras callback."""

import math
import warnings

import numpy as np

from keras_trainplus import _cluster
from keras_trainplus import _export
from keras_trainplus import _validation as v
from keras_trainplus.callbacks._arguments import step_shape_schedule
from keras_trainplus.callbacks.hyperparameter_scheduler import (
    HyperparameterScheduler,
)
from keras_trainplus.callbacks.newbob import _protocol as _newbob
from keras_trainplus.callbacks.newbob import _returnn_config
from keras_trainplus.callbacks.newbob import _state_file
from keras_trainplus.callbacks.newbob import _values
from keras_trainplus.schedules.per_epoch import PerEpoch

_MAX_METRICS = ("acc", "auc", "precision", "recall", "f1", "iou")


@_export.register
class NewbobLRControl(HyperparameterScheduler):
    """RETURNN's newbob learning-rate control, an exact port, for `fit`.

    Before epoch ``n`` the LR is decided from the scores of the previous
    epochs, as RETURNN's `learning_rate_control` does (Keras epoch ``i`` is
    RETURNN epoch ``i + 1``). `"newbob_rel"`: ``r = (new - old) / |new|``;
    multiply by `decay` if ``r > relative_error_threshold``, else by
    `growth`. The other controls, resuming, RETURNN compatibility and
    how the decision reaches the step: [docs/newbob.md](../docs/newbob.md).

    Args:
        control: `"constant"`, `"newbob_rel"` (`"newbob"`,
            `"newbob_relative"`), `"newbob_abs"`, `"newbob_multi_epoch"`.
        monitor, mode: logs key (`"val_loss"`), and `"auto"`/`"min"`/`"max"`.
        initial_lr: first LR. Defaults to the optimizer's at `fit` start.
        learning_rates: predefined LRs: list or ``{epoch: lr}`` (resets).
        decay, growth: factor or serializable ``lr -> lr``. `0.5`, `1.0`.
        relative_error_threshold, error_threshold: `-0.01` each.
        relative_error_grow_threshold: `None` (the decay threshold).
        multi_num_epochs, multi_update_interval: window (default 5) and
            interval (`None`: the window) of `"newbob_multi_epoch"`.
        relative_error_relative_lr, relative_error_div_by_old: bool.
        min_num_epochs_per_new_lr: int >= 0. Defaults to `0`.
        min_lr: float >= 0, floor of a decay. Defaults to `0.0`.
        state_file: JSON state path (resume; RETURNN files imported).
        restore_best_weights: restore the best weights on a decay.
        step_shape: per-step schedule; the step uses ``lr * shape(step)``.
        verbose: int. Defaults to `0`.

    Example:

    ```python
    cb = keras_trainplus.callbacks.NewbobLRControl(
        "newbob_rel", initial_lr=1e-3, state_file="lr_state.json")
    model.fit(x, y, validation_data=(xv, yv), epochs=30, callbacks=[cb])
    ```

    Raises:
        ValueError: for invalid arguments; at `fit`, a monitored key not
            in `logs`, no valid LR from `decay`/`growth`, a bad state file.
    """

    def __init__(
        self,
        control="newbob_rel",
        monitor="val_loss",
        mode="auto",
        initial_lr=None,
        learning_rates=None,
        decay=0.5,
        growth=1.0,
        relative_error_threshold=-0.01,
        error_threshold=-0.01,
        relative_error_grow_threshold=None,
        multi_num_epochs=5,
        multi_update_interval=None,
        relative_error_relative_lr=False,
        relative_error_div_by_old=False,
        min_num_epochs_per_new_lr=0,
        min_lr=0.0,
        state_file=None,
        restore_best_weights=False,
        step_shape=None,
        verbose=0,
    ):
        self._set_rule(
            control, monitor, mode, initial_lr, learning_rates, decay, growth
        )
        self._set_thresholds(
            relative_error_threshold,
            error_threshold,
            relative_error_grow_threshold,
            multi_num_epochs,
            multi_update_interval,
            relative_error_relative_lr,
            relative_error_div_by_old,
            min_num_epochs_per_new_lr,
        )
        self.min_lr = v.real("min_lr", _values.as_float(min_lr), minimum=0)
        self.state_file = v.path("state_file", state_file, allow_none=True)
        self.restore_best_weights = v.boolean(
            "restore_best_weights", restore_best_weights
        )
        self.step_shape = step_shape_schedule(step_shape)
        # The controller decides once per epoch; the driver writes the
        # learning-rate knob (times `step_shape` in the compiled step).
        lr = PerEpoch(self._decide)
        options = {"argument": "learning_rate_control"}
        if self.step_shape is not None:
            lr = lr * self.step_shape
            options = {"argument": "step_shape"}
        super().__init__(
            {"learning_rate": lr},
            origin="fit",
            verbose=verbose,
            options={"learning_rate": options},
        )
        # RETURNN compatibility (set by `from_returnn_config`).
        self._returnn_config = None
        self._error_measure = None

    def _set_rule(
        self, control, monitor, mode, initial_lr, learning_rates, decay, growth
    ):
        """What is controlled, from which score, and by which factors."""
        self.control = v.choice("control", control, tuple(_newbob.CONTROLS))
        self.monitor = v.string("monitor", monitor)
        self.mode = v.choice("mode", mode, ("auto", "min", "max"))
        self.initial_lr = v.real(
            "initial_lr",
            _values.as_float(initial_lr),
            minimum=0,
            allow_none=True,
        )
        self.learning_rates = _values.predefined(learning_rates, offset=0)
        self.decay = _values.factor("decay", decay)
        self.growth = _values.factor("growth", growth)

    def _set_thresholds(
        self,
        relative_error_threshold,
        error_threshold,
        relative_error_grow_threshold,
        multi_num_epochs,
        multi_update_interval,
        relative_error_relative_lr,
        relative_error_div_by_old,
        min_num_epochs_per_new_lr,
    ):
        """The decision rule's arguments (see docs/newbob.md), checked."""
        self.relative_error_threshold = v.real(
            "relative_error_threshold",
            _values.as_float(relative_error_threshold),
        )
        self.error_threshold = v.real(
            "error_threshold", _values.as_float(error_threshold)
        )
        self.relative_error_grow_threshold = v.real(
            "relative_error_grow_threshold",
            _values.as_float(relative_error_grow_threshold),
            allow_none=True,
        )
        self.multi_num_epochs = v.integer(
            "multi_num_epochs", multi_num_epochs, minimum=1
        )
        self.multi_update_interval = v.integer(
            "multi_update_interval",
            multi_update_interval,
            minimum=1,
            allow_none=True,
        )
        self.relative_error_relative_lr = v.boolean(
            "relative_error_relative_lr", relative_error_relative_lr
        )
        self.relative_error_div_by_old = v.boolean(
            "relative_error_div_by_old", relative_error_div_by_old
        )
        self.min_num_epochs_per_new_lr = v.integer(
            "min_num_epochs_per_new_lr", min_num_epochs_per_new_lr, minimum=0
        )

    # -- RETURNN config -----------------------------------------------------

    @classmethod
    def from_returnn_config(cls, config, **kwargs):
        """Builds the callback from RETURNN config keys, with RETURNN's
        defaults and 1-based epoch numbering for `learning_rates`.

        `dev_score` is Keras's `val_loss` and `train_score` its `loss`. An
        epoch without a dev score behaves as in RETURNN: it is compared by
        its train score, so it holds the LR next to epochs with dev scores,
        and two consecutive such epochs compare train scores. The score key
        follows RETURNN's selection (`learning_rate_control_error_measure`,
        then `dev_score`, ...). `learning_rate_file` becomes the state file
        (RETURNN's own format is imported without `eval`).

        Args:
            config: dict of RETURNN config keys (other keys are ignored;
                misspelled learning-rate keys get a warning).
            **kwargs: `NewbobLRControl` arguments that RETURNN has no key
                for (`restore_best_weights`, `step_shape`, `verbose`).

        Raises:
            ValueError: for invalid values (the message names the RETURNN
                key) or kwargs.
        """
        return _returnn_config.build(cls, config, kwargs)

    # -- runtime ------------------------------------------------------------

    _RUNTIME = HyperparameterScheduler._RUNTIME + (
        "_controller",
        "_epoch_lr",
        "_best_weights",
    )

    def _reset_runtime(self):
        super()._reset_runtime()
        self._controller = None
        self._epoch_lr = {}
        self._seen_monitor = False
        self._warned_missing = False
        self._best = None
        self._best_weights = None
        self._chief = True
        self._imported_returnn = False

    def _sign(self):
        mode = self.mode
        if mode == "auto":
            name = self.monitor.lower()
            mode = "max" if any(m in name for m in _MAX_METRICS) else "min"
        return -1 if mode == "max" else 1

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)  # the LR knob, one writer per value
        self._chief = _cluster.is_chief()
        initial = self.initial_lr
        if initial is None:
            initial = self._bindings["learning_rate"].base()
        self._controller = _newbob.controller_for(self, initial)
        self._controller.load(self._load_state())
        self._seen_monitor = any(
            self.monitor in r["scores"] or "dev_score" in r["scores"]
            for r in self._controller.records.values()
        )

    def _ensure_started(self):
        # Also usable through the bare callback protocol (no on_train_begin).
        if self._controller is None:
            self.on_train_begin()

    def on_epoch_begin(self, epoch, logs=None):
        self._ensure_started()
        super().on_epoch_begin(epoch, logs)  # writes `_decide(epoch)`

    def _decide(self, epoch):
        """The learning rate of a 0-based epoch (the driver's `PerEpoch`
        leaf): decided once, when the epoch starts."""
        n = epoch + 1
        if n in self._epoch_lr:
            return self._epoch_lr[n]
        lr = self._controller.lr_for_epoch(n)
        decided = self._controller.last_decision
        if (
            self.restore_best_weights
            and decided == "decay"
            and self._best_weights is not None
        ):
            self.model.set_weights(self._best_weights)
            if self.verbose:
                print(
                    f"\nEpoch {n}: NewbobLRControl restored the weights of "
                    f"the best epoch ({self.monitor}={self._best:.6g})."
                )
        self._epoch_lr[n] = lr
        self._save_state()
        if self.verbose:
            what = {"decay": "decayed", "grow": "grown"}.get(decided, "set")
            print(
                f"\nEpoch {n}: NewbobLRControl {what} learning rate to "
                f"{lr:.6g}."
            )
        return lr

    def _print_values(self, epoch):
        """`_decide` reports the decisions."""

    def _scores(self, epoch, logs):
        logs = logs or {}
        if self._returnn_config is not None:
            out = {}
            if logs.get("loss") is not None:
                out["train_score"] = _values.as_float(logs["loss"])
            if logs.get("val_loss") is not None:
                out["dev_score"] = _values.as_float(logs["val_loss"])
            return out
        value = logs.get(self.monitor)
        if value is None:
            if not self._seen_monitor:
                available = ", ".join(sorted(logs)) or "none"
                raise ValueError(
                    f"NewbobLRControl monitors {self.monitor!r}, which is not "
                    f"in the logs of epoch {epoch} (available: {available}). "
                    "Pass `validation_data` to `fit` (for val_* keys, with "
                    "`validation_freq=1`: newbob compares consecutive "
                    "epochs), or choose another `monitor`."
                )
            if not self._warned_missing:
                warnings.warn(
                    f"NewbobLRControl: {self.monitor!r} is missing in epoch "
                    f"{epoch}; no decision uses that epoch (the LR is held).",
                    stacklevel=2,
                )
                self._warned_missing = True
            return {}
        self._seen_monitor = True
        return {self.monitor: _values.as_float(value)}

    def on_epoch_end(self, epoch, logs=None):
        self._ensure_started()
        super().on_epoch_end(epoch, logs)
        n = epoch + 1
        scores = self._scores(epoch, logs)
        self._controller.set_scores(n, scores)
        if n not in self._epoch_lr:  # bare protocol without on_epoch_begin
            self._epoch_lr[n] = self._controller.lr_for_epoch(n)
        if logs is not None:
            logs["learning_rate"] = float(self._epoch_lr[n])
        if self.restore_best_weights:
            self._track_best(n)
        self._save_state()

    def _track_best(self, n):
        found = self._controller.score(n)
        if found is None or not math.isfinite(found[1]):
            return
        value = self._controller.sign * found[1]
        if self._best is None or value < self._best:
            self._best = value
            self._best_weights = [np.array(w) for w in self.model.get_weights()]

    # -- state file ---------------------------------------------------------

    def _load_state(self):
        rename = None
        if self._returnn_config is None:  # RETURNN's keys as ours
            rename = {"dev_score": self.monitor, "train_score": "loss"}
        records, self._imported_returnn = _state_file.load(
            self.state_file, rename
        )
        return records

    def _save_state(self):
        if self.state_file is None or not self._chief:
            return
        _state_file.save(
            self.state_file,
            self._controller.records,
            backup=getattr(self, "_imported_returnn", False),
        )
        self._imported_returnn = False

    @staticmethod
    def read_state_file(path):
        """Reads a state file (ours, or RETURNN's `learning_rate_file`)
        without executing anything.

        Returns:
            dict ``{keras_epoch: {"learning_rate": float, "scores": {...},
            "predefined": bool}}``.

        Raises:
            ValueError: if the file is corrupt, truncated or unsafe.
        """
        records, _ = _state_file.load(path)
        return _state_file.by_keras_epoch(records)

    # -- config -------------------------------------------------------------

    def get_config(self):
        return _values.config_of(self)

    @classmethod
    def from_config(cls, config):
        return _values.from_config(cls, config)
