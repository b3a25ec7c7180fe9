"""`NewbobLRControl`: RETURNN's learning-rate control as a Keras callback."""

import ast
import copy
import math
import os
import shutil
import warnings

import keras
import numpy as np

from keras_trainplus import _cluster
from keras_trainplus import _export
from keras_trainplus import _validation as v
from keras_trainplus.callbacks import _fit_guard
from keras_trainplus.callbacks._arguments import step_shape_schedule
from keras_trainplus.callbacks.hyperparameter_scheduler import (
    HyperparameterScheduler,
)
from keras_trainplus.callbacks.newbob import _protocol as _newbob
from keras_trainplus.callbacks.newbob import _state_file
from keras_trainplus.knobs.learning_rate import LearningRateKnob
from keras_trainplus.schedules.base_value import BaseValue

_RETURNN_KEYS = {
    "learning_rate_control",
    "learning_rate",
    "learning_rates",
    "min_learning_rate",
    "learning_rate_decay",
    "newbob_learning_rate_decay",
    "learning_rate_growth",
    "newbob_learning_rate_growth",
    "newbob_relative_error_threshold",
    "newbob_error_threshold",
    "newbob_multi_num_epochs",
    "newbob_multi_update_interval",
    "newbob_relative_error_grow_threshold",
    "newbob_relative_error_div_by_old",
    "learning_rate_control_relative_error_relative_lr",
    "learning_rate_control_min_num_epochs_per_new_lr",
    "learning_rate_control_error_measure",
    "learning_rate_file",
}
_MAX_METRICS = ("acc", "auc", "precision", "recall", "f1", "iou")


@_export.register
class NewbobLRControl(keras.callbacks.Callback):
    """RETURNN's newbob learning-rate control, an exact port, for `fit`.

    Before each epoch the learning rate is decided from the monitored scores
    of the *previous* epochs, exactly as RETURNN's `learning_rate_control`
    decides ``LR(n)`` before epoch ``n`` trains (Keras epoch ``i`` is RETURNN
    epoch ``i + 1``):

    * ``"constant"``: keep the previous epoch's LR (after a predefined list,
      its last value);
    * ``"newbob_rel"`` (aliases ``"newbob"``, ``"newbob_relative"``): with
      ``r = (new - old) / |new|`` between the last two epochs, multiply the
      LR by `decay` if ``r > relative_error_threshold`` (not at least ~1%
      better), else by `growth`;
    * ``"newbob_abs"``: the same test on ``new - old`` against
      `error_threshold`;
    * ``"newbob_multi_epoch"``: every `multi_update_interval` epochs, the
      mean relative error over the last `multi_num_epochs` epoch pairs;
      decay if above `relative_error_threshold`, grow if below
      `relative_error_grow_threshold`.

    Unlike `ReduceLROnPlateau` it compares neighbouring epochs (not the best
    so far), has no patience or cooldown (see `min_num_epochs_per_new_lr`),
    can grow the LR, supports predefined per-epoch LRs with resets, and keeps
    its full per-epoch history in a state file so that a restarted run gives
    exactly the LRs an uninterrupted one would have.

    The LR is written into the optimizer's learning-rate variable, so it
    reaches the compiled step on every backend and under `tf.distribute`
    (every worker decides identically; only the chief writes the state
    file). A per-step `step_shape` (e.g. a warmup) multiplies it inside the
    compiled step, like RETURNN's `dynamic_learning_rate`. Each epoch's LR is
    logged as ``logs["learning_rate"]`` (and ``logs["effective_learning_rate"]``
    with a `step_shape`: the value of the epoch's last update).

    Defined behaviour where RETURNN crashes: a score of exactly 0 as a
    denominator gives an IEEE result (``+-inf``/``nan``, as RETURNN computes
    with NumPy scores) instead of `ZeroDivisionError`; with
    `relative_error_relative_lr` and a learning rate of 0 (the current or
    the initial one) the relative error is used unscaled instead of
    dividing by zero; numpy scalars and
    integer LRs are accepted; a multi-epoch mean that is both above the
    decay threshold and below the grow threshold decays (with a warning)
    instead of failing an assertion.

    Args:
        control: `"constant"`, `"newbob_rel"` (or `"newbob"`,
            `"newbob_relative"`), `"newbob_abs"` or `"newbob_multi_epoch"`.
            Defaults to `"newbob_rel"`.
        monitor: logs key to monitor. Defaults to `"val_loss"`. A key that
            never appears in the logs is an error; an epoch without it makes
            no decision (hold).
        mode: `"min"`, `"max"` or `"auto"` (max for accuracy-like names).
            Defaults to `"auto"`.
        initial_lr: LR of the first epoch, and the reference of
            `relative_error_relative_lr`. Defaults to the optimizer's LR when
            `fit` starts.
        learning_rates: predefined LRs: a list (epochs 0, 1, ...; control
            continues from the last value) or a dict ``{epoch: lr}`` (0-based
            Keras epochs; later entries are resets). Used verbatim.
        decay: float factor or serializable callable ``lr -> lr``.
            Defaults to `0.5`.
        growth: float factor or serializable callable. Defaults to `1.0`.
        relative_error_threshold: float. Defaults to `-0.01`.
        error_threshold: float (newbob_abs). Defaults to `-0.01`.
        relative_error_grow_threshold: float (multi-epoch); `None` means
            `relative_error_threshold`.
        multi_num_epochs: int >= 1 (multi-epoch window). Defaults to `5`.
        multi_update_interval: int >= 1; `None` means `multi_num_epochs`.
        relative_error_relative_lr: bool. Divide the relative error by
            ``lr / initial_lr`` (not when either LR is 0). Defaults to
            `False`.
        relative_error_div_by_old: bool. Divide by ``|old|`` instead of
            ``|new|``. Defaults to `False`.
        min_num_epochs_per_new_lr: int >= 0. After any change, hold the LR
            until it was used that many epochs. Defaults to `0`.
        min_lr: float >= 0. Lower clip after a decay. Defaults to `0.0`.
        state_file: path of a JSON state file (or `None`). Existing records
            are authoritative (resume); a RETURNN `learning_rate_file` is
            imported safely. Written atomically after every decision and
            every epoch's scores, by the chief only.
        restore_best_weights: bool. When the LR is decayed, restore the
            weights of the best epoch so far (by `monitor`). Defaults to
            `False`.
        step_shape: optional keras_trainplus schedule; the compiled step uses
            ``lr * step_shape(step)``.
        verbose: int. Defaults to `0`.

    Example:

    ```python
    cb = keras_trainplus.callbacks.NewbobLRControl(
        "newbob_rel", learning_rates=[1e-4, 5e-4, 1e-3],
        state_file="lr_state.json")
    model.fit(x, y, validation_data=(xv, yv), epochs=30, callbacks=[cb])

    # From a RETURNN config:
    cb = keras_trainplus.callbacks.NewbobLRControl.from_returnn_config({
        "learning_rate": 1e-3, "learning_rate_control": "newbob_multi_epoch",
        "newbob_multi_num_epochs": 3, "newbob_multi_update_interval": 1})
    ```

    Raises:
        ValueError: for invalid arguments; at `fit`, when the monitored key
            never appears or holds something other than a scalar number,
            when a callable `decay`/`growth` returns no valid learning
            rate, or when the state file is corrupt or unsafe.
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
        super().__init__()
        self.control = v.choice("control", control, tuple(_newbob.CONTROLS))
        self.monitor = v.string("monitor", monitor)
        self.mode = v.choice("mode", mode, ("auto", "min", "max"))
        self.initial_lr = v.real(
            "initial_lr", _float(initial_lr), minimum=0, allow_none=True
        )
        self.learning_rates = _predefined(learning_rates, offset=0)
        self.decay = _factor("decay", decay)
        self.growth = _factor("growth", growth)
        self.relative_error_threshold = v.real(
            "relative_error_threshold", _float(relative_error_threshold)
        )
        self.error_threshold = v.real(
            "error_threshold", _float(error_threshold)
        )
        self.relative_error_grow_threshold = v.real(
            "relative_error_grow_threshold",
            _float(relative_error_grow_threshold),
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
        self.min_lr = v.real("min_lr", _float(min_lr), minimum=0)
        self.state_file = v.path("state_file", state_file, allow_none=True)
        self.restore_best_weights = v.boolean(
            "restore_best_weights", restore_best_weights
        )
        self.step_shape = step_shape_schedule(step_shape)
        self.verbose = v.integer("verbose", verbose, minimum=0)
        # RETURNN compatibility (set by `from_returnn_config`).
        self._returnn_config = None
        self._error_measure = None
        self._reset_runtime()

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
        if not isinstance(config, dict):
            v.fail_type("config", config, "a dict of RETURNN config keys")
        if not all(isinstance(k, str) for k in config):
            v.fail_type("config", config, "a dict with string keys")
        allowed = {"restore_best_weights", "step_shape", "verbose"}
        if set(kwargs) - allowed:
            raise ValueError(
                "from_returnn_config accepts only RETURNN keys in `config` "
                f"and {sorted(allowed)} as keyword arguments. Received: "
                f"{sorted(set(kwargs) - allowed)}"
            )
        unknown = [
            k
            for k in config
            if k not in _RETURNN_KEYS
            and (k.startswith("newbob") or k.startswith("learning_rate"))
        ]
        if unknown:
            warnings.warn(
                f"Ignoring unknown RETURNN learning-rate keys {unknown}; "
                "known keys: " + ", ".join(sorted(_RETURNN_KEYS)),
                stacklevel=2,
            )

        # Messages name the RETURNN key the user wrote, not our argument.
        keys = {}

        def get(argument, *names, default=None):
            keys[argument] = names[0]
            for k in names:
                if k in config and config[k] is not None:
                    keys[argument] = k
                    return config[k]
            return default

        arguments = dict(
            control=get("control", "learning_rate_control", default="constant"),
            monitor="val_loss",
            mode="min",
            initial_lr=get("initial_lr", "learning_rate", default=1.0),
            learning_rates=None,
            decay=get(
                "decay",
                "learning_rate_decay",
                "newbob_learning_rate_decay",
                default=0.5,
            ),
            growth=get(
                "growth",
                "learning_rate_growth",
                "newbob_learning_rate_growth",
                default=1.0,
            ),
            relative_error_threshold=get(
                "relative_error_threshold",
                "newbob_relative_error_threshold",
                default=-0.01,
            ),
            error_threshold=get(
                "error_threshold", "newbob_error_threshold", default=-0.01
            ),
            relative_error_grow_threshold=get(
                "relative_error_grow_threshold",
                "newbob_relative_error_grow_threshold",
            ),
            multi_num_epochs=get(
                "multi_num_epochs", "newbob_multi_num_epochs", default=5
            ),
            multi_update_interval=get(
                "multi_update_interval", "newbob_multi_update_interval"
            ),
            relative_error_relative_lr=_returnn_bool(
                "learning_rate_control_relative_error_relative_lr",
                get(
                    "relative_error_relative_lr",
                    "learning_rate_control_relative_error_relative_lr",
                    default=False,
                ),
            ),
            relative_error_div_by_old=_returnn_bool(
                "newbob_relative_error_div_by_old",
                get(
                    "relative_error_div_by_old",
                    "newbob_relative_error_div_by_old",
                    default=False,
                ),
            ),
            min_num_epochs_per_new_lr=get(
                "min_num_epochs_per_new_lr",
                "learning_rate_control_min_num_epochs_per_new_lr",
                default=0,
            ),
            min_lr=get("min_lr", "min_learning_rate", default=0.0),
            state_file=get("state_file", "learning_rate_file"),
        )
        with v.aliases(keys):
            cb = cls(**arguments, **kwargs)
            cb.learning_rates = _predefined(
                _returnn_lrs(config.get("learning_rates")), offset=1
            )
        measure = get("error_measure", "learning_rate_control_error_measure")
        if measure is not None and not (
            isinstance(measure, str)
            or (
                isinstance(measure, (list, tuple))
                and all(isinstance(k, str) for k in measure)
            )
        ):
            v.fail_type(
                "learning_rate_control_error_measure",
                measure,
                "a logs key or a list of keys",
            )
        cb._error_measure = measure
        cb._returnn_config = {
            k: _plain(config[k]) for k in config if k in _RETURNN_KEYS
        }
        return cb

    # -- runtime ------------------------------------------------------------

    def _reset_runtime(self):
        self._controller = None
        self._binding = None
        self._epoch_lr = {}
        self._seen_monitor = False
        self._warned_missing = False
        self._best = None
        self._best_weights = None
        self._shape_driver = None
        self._chief = True
        self._imported_returnn = False
        self._guard = None

    def __deepcopy__(self, memo):
        new = type(self).__new__(type(self))
        memo[id(self)] = new
        runtime = {
            "_model",
            "_controller",
            "_binding",
            "_epoch_lr",
            "_best_weights",
            "_shape_driver",
            "_guard",
        }
        for key, value in self.__dict__.items():
            if key not in runtime:
                new.__dict__[key] = copy.deepcopy(value, memo)
        new.set_model(None)
        new._reset_runtime()
        return new

    def _sign(self):
        mode = self.mode
        if mode == "auto":
            name = self.monitor.lower()
            mode = "max" if any(m in name for m in _MAX_METRICS) else "min"
        return -1 if mode == "max" else 1

    def on_train_begin(self, logs=None):
        self._reset_runtime()
        model = self.model
        _cluster.check_strategy_support(model, "NewbobLRControl")
        self._binding = LearningRateKnob(model)
        self._guard = _fit_guard.guard_for(self)
        for key, what in self._binding.value_keys():
            self._guard.claim(key, self, None, "base", what)
        self._chief = _cluster.is_chief()
        initial = self.initial_lr
        if initial is None:
            initial = self._binding.base()
        returnn = self._returnn_config is not None
        if returnn:
            measure = self._error_measure

            def error_key(scores):
                return _newbob.select_error_key(scores, measure)
        else:
            error_key = self.monitor
        self._controller = _newbob.NewbobController(
            self.control,
            initial,
            learning_rates=self.learning_rates,
            decay=self.decay,
            growth=self.growth,
            relative_error_threshold=self.relative_error_threshold,
            error_threshold=self.error_threshold,
            grow_threshold=self.relative_error_grow_threshold,
            num_epochs=self.multi_num_epochs,
            update_interval=self.multi_update_interval,
            relative_lr=self.relative_error_relative_lr,
            div_by_old=self.relative_error_div_by_old,
            min_epochs_per_new_lr=self.min_num_epochs_per_new_lr,
            min_lr=self.min_lr,
            error_key=error_key,
            sign=1 if returnn else self._sign(),
        )
        self._controller.load(self._load_state())
        self._seen_monitor = any(
            self.monitor in r["scores"] or "dev_score" in r["scores"]
            for r in self._controller.records.values()
        )
        if self.step_shape is not None:
            driver = HyperparameterScheduler(
                {"learning_rate": BaseValue() * self.step_shape},
                options={
                    "learning_rate": {
                        "log_key": "effective_learning_rate",
                        "argument": "step_shape",
                    }
                },
            )
            driver._display_name = "NewbobLRControl (step_shape)"
            driver.set_model(model)
            driver.set_params(self.params)
            driver.on_train_begin(logs)
            self._shape_driver = driver

    def _ensure_started(self):
        # Also usable through the bare callback protocol (no on_train_begin).
        if self._controller is None:
            self.on_train_begin()

    def on_epoch_begin(self, epoch, logs=None):
        self._ensure_started()
        model = self.model  # on JAX: sync the train state before writing
        n = epoch + 1
        lr = self._controller.lr_for_epoch(n)
        decided = self._controller.last_decision
        if (
            self.restore_best_weights
            and decided == "decay"
            and self._best_weights is not None
        ):
            model.set_weights(self._best_weights)
            if self.verbose:
                print(
                    f"\nEpoch {n}: NewbobLRControl restored the weights of "
                    f"the best epoch ({self.monitor}={self._best:.6g})."
                )
        self._binding.check_external_write("NewbobLRControl")
        if not self._epoch_lr:
            # From here on the LR differs from before `fit`: undo on error.
            self._guard.add(self, self._binding.restore_original)
        self._binding.set_base(lr)
        self._epoch_lr[n] = lr
        self._save_state()
        if self._shape_driver is not None:
            self._shape_driver.on_epoch_begin(epoch, logs)
        if self.verbose:
            what = {"decay": "decayed", "grow": "grown"}.get(decided, "set")
            print(
                f"\nEpoch {n}: NewbobLRControl {what} learning rate to "
                f"{lr:.6g}."
            )

    def _scores(self, epoch, logs):
        logs = logs or {}
        if self._returnn_config is not None:
            out = {}
            if logs.get("loss") is not None:
                out["train_score"] = _float(logs["loss"])
            if logs.get("val_loss") is not None:
                out["dev_score"] = _float(logs["val_loss"])
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
        return {self.monitor: _float(value)}

    def on_epoch_end(self, epoch, logs=None):
        self._ensure_started()
        self._binding.check_external_write("NewbobLRControl")
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
        if self._shape_driver is not None:
            self._shape_driver.on_epoch_end(epoch, logs)

    def on_train_end(self, logs=None):
        if self._shape_driver is not None:
            self._shape_driver.on_train_end(logs)
        if self._binding is not None:
            self._binding.check_external_write("NewbobLRControl")
        if self._guard is not None:
            self._guard.done(self)

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
        path = self.state_file
        if path is None or not os.path.exists(path):
            return {}
        with open(path, encoding="utf-8") as f:
            text = f.read()
        if _state_file.is_returnn_format(text):
            records = _state_file.loads_returnn(text, path)
            if self._returnn_config is None:
                rename = {"dev_score": self.monitor, "train_score": "loss"}
                for rec in records.values():
                    rec["scores"] = {
                        rename.get(k, k): s for k, s in rec["scores"].items()
                    }
            self._imported_returnn = True
            return records
        self._imported_returnn = False
        return _state_file.loads(text, path)

    def _save_state(self):
        path = self.state_file
        if path is None or not self._chief:
            return
        if getattr(self, "_imported_returnn", False):
            backup = path + ".returnn-backup"
            if not os.path.exists(backup):
                shutil.copy2(path, backup)
            self._imported_returnn = False
        _state_file.write_atomic(
            path, _state_file.dumps(self._controller.records)
        )

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
        with open(path, encoding="utf-8") as f:
            text = f.read()
        if _state_file.is_returnn_format(text):
            records = _state_file.loads_returnn(text, path)
        else:
            records = _state_file.loads(text, path)
        return {
            n - 1: {
                "learning_rate": r["lr"],
                "scores": r["scores"],
                "predefined": r["predefined"],
            }
            for n, r in sorted(records.items())
        }

    # -- config -------------------------------------------------------------

    def get_config(self):
        common = {
            "restore_best_weights": self.restore_best_weights,
            "step_shape": (
                None
                if self.step_shape is None
                else _export.serialize(self.step_shape)
            ),
            "verbose": self.verbose,
        }
        if self._returnn_config is not None:
            return {"returnn_config": dict(self._returnn_config), **common}
        config = {
            "control": self.control,
            "monitor": self.monitor,
            "mode": self.mode,
            "initial_lr": self.initial_lr,
            "learning_rates": (
                None
                if self.learning_rates is None
                else [
                    [n - 1, lr] for n, lr in sorted(self.learning_rates.items())
                ]
            ),
            "decay": _serialize_factor("decay", self.decay),
            "growth": _serialize_factor("growth", self.growth),
            "relative_error_threshold": self.relative_error_threshold,
            "error_threshold": self.error_threshold,
            "relative_error_grow_threshold": self.relative_error_grow_threshold,
            "multi_num_epochs": self.multi_num_epochs,
            "multi_update_interval": self.multi_update_interval,
            "relative_error_relative_lr": self.relative_error_relative_lr,
            "relative_error_div_by_old": self.relative_error_div_by_old,
            "min_num_epochs_per_new_lr": self.min_num_epochs_per_new_lr,
            "min_lr": self.min_lr,
            "state_file": self.state_file,
        }
        config.update(common)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if config.get("step_shape") is not None:
            config["step_shape"] = _export.deserialize(config["step_shape"])
        if "returnn_config" in config:
            return cls.from_returnn_config(
                config.pop("returnn_config"), **config
            )
        for key in ("decay", "growth"):
            config[key] = _export.deserialize(config[key])
        if isinstance(config.get("learning_rates"), list) and all(
            isinstance(p, list) and len(p) == 2
            for p in config["learning_rates"]
        ):
            config["learning_rates"] = dict(
                (int(e), lr) for e, lr in config["learning_rates"]
            )
        return cls(**config)


def _float(x):
    """Coerces numpy scalars, 0-d arrays, scalar tensors and ints to float
    (None, and what is no number, pass unchanged for the checks to
    report)."""
    if x is None or isinstance(x, bool):
        return x
    if isinstance(x, (int, float, np.integer, np.floating)):
        return float(x)
    if keras.ops.is_tensor(x) or hasattr(x, "numpy"):
        x = np.asarray(keras.ops.convert_to_numpy(x))
    if (
        isinstance(x, np.ndarray)
        and x.shape == ()
        and (
            np.issubdtype(x.dtype, np.integer)
            or np.issubdtype(x.dtype, np.floating)
        )
    ):
        return float(x)
    return x


def _plain(x):
    """JSON-able copy of a RETURNN config value."""
    if isinstance(x, dict):
        return {str(k): _plain(val) for k, val in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(i) for i in x]
    return _float(x)


def _factor(name, value):
    if callable(value):
        return value
    value = _float(value)
    return v.positive(name, value)


def _serialize_factor(name, value):
    if callable(value):
        return _export.serialize_callable(name, value)
    return value


def _returnn_bool(key, value):
    """A RETURNN boolean: a bool, 0/1, or "true"/"false" (RETURNN's
    `Config.bool` accepts these)."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    v.fail_type(key, value, 'a bool (or 0/1, "true"/"false")')


def _returnn_lrs(value):
    """RETURNN `learning_rates`: list, dict or a *string literal* (RETURNN
    `eval`s strings; here only literals are accepted)."""
    if isinstance(value, str):
        try:
            value = ast.literal_eval(value)
        except (
            ValueError,
            SyntaxError,
            TypeError,
            MemoryError,
            RecursionError,
        ):
            v.fail(
                "learning_rates",
                value,
                "a list or dict literal when given as a string",
            )
    return value


def _predefined(value, offset):
    """{epoch (1-based): lr} from a list (epochs 1..) or a dict whose keys
    are 0-based Keras epochs (`offset=0`) or 1-based RETURNN ones (1)."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        if not value:
            v.fail("learning_rates", value, "a non-empty list")
        return {
            i + 1: v.target_value(
                "learning_rate", _float(lr), f"learning_rates[{i}]"
            )
            for i, lr in enumerate(value)
        }
    if isinstance(value, dict):
        expected = f"a non-empty dict {{epoch: lr}} with int epochs >= {offset}"
        if not value:
            v.fail("learning_rates", value, expected)
        out = {}
        for key, lr in value.items():
            if isinstance(key, str) and key.lstrip("-").isdigit():
                key = int(key)  # JSON object keys are strings
            if not v.is_integer(_float(key), offset):
                v.fail("learning_rates", value, expected)
            out[int(key) + 1 - offset] = v.target_value(
                "learning_rate", _float(lr), f"learning_rates[{key!r}]"
            )
        return out
    v.fail_type("learning_rates", value, "a list or a dict {epoch: lr}")
