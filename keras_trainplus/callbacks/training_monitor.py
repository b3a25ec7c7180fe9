"""`TrainingMonitor`: per-layer gradients, updates and activations,
recorded in the compiled step, with diagnoses."""

import copy
import os
import weakref

import keras
import numpy as np

from keras_trainplus import _export
from keras_trainplus import _internals as internals
from keras_trainplus import _validation as v
from keras_trainplus.callbacks import _fit_guard
from keras_trainplus.callbacks.monitor._diagnosis import Diagnosis
from keras_trainplus.callbacks.monitor._history import MonitorHistory
from keras_trainplus.callbacks.monitor._layers import WatchedLayers
from keras_trainplus.callbacks.monitor._layers import check_layers
from keras_trainplus.callbacks.monitor._output import TensorBoardWriter
from keras_trainplus.callbacks.monitor._output import plot_heat_maps
from keras_trainplus.callbacks.monitor._recorder import GradientRecorder
from keras_trainplus.callbacks.monitor._switch import RecordingSwitch
from keras_trainplus.callbacks.monitor._taps import ActivationTaps

STATS = (
    "grad_norm",
    "weight_norm",
    "update_ratio",
    "activation_mean",
    "activation_std",
    "dead_fraction",
)
_GRADIENT = {"grad_norm", "weight_norm", "update_ratio"}
_ACTIVATION = {"activation_mean", "activation_std", "dead_fraction"}
_ACTIVE = weakref.WeakKeyDictionary()  # model -> its running monitor
# Floats held by the record buffers at most (beyond the minimum of two
# execution blocks): 16 MiB of float32.
_BUFFER_BUDGET = 4 * 1024 * 1024


@_export.register
class TrainingMonitor(keras.callbacks.Callback):
    """Per-layer gradient norms, update ratios and activation statistics,
    recorded inside the compiled step every `every_n_steps` updates.

    Per watched layer (the `layers` given, else every layer with trainable
    weights; a layer's norms cover all its trainable variables together):
    ``grad_norm`` (of the gradient the update uses: after the cross-replica
    sum and accumulation, before clipping; with a clip, ``clipped`` marks
    the clipped records), ``weight_norm``, ``update_ratio``
    (``||w_after - w_before|| / ||w_before||``), and of its output
    ``activation_mean``, ``activation_std`` and ``dead_fraction`` (units,
    the last axis, that are 0 for every example). Exact at any
    `steps_per_execution`, under XLA and distribution; no extra pass
    ([docs/training_monitor.md](../docs/training_monitor.md)).

    Results: `history` (``{stat: array [records, layers]}``), `steps`
    (0-based update indices, ``[records]``), `layer_names`, `diagnose()`,
    `plot(path)`; per epoch ``logs["monitor/<stat>_max"]`` and ``_min``
    (and ``"monitor/clipped_share"``; Python floats), with the layer and
    update in `epoch_summaries`.

    Args:
        every_n_steps: int >= 1, record every n-th update. Defaults to 10.
        layers: None, or layer names / `Layer` objects to watch.
        stats: the statistics to record, a subset of the default (all).
        log_dir: None, or a directory for TensorBoard events (any backend).
        warn: bool, warn once per kind and layer. Defaults to `True`.

    Example:

    ```python
    monitor = keras_trainplus.callbacks.TrainingMonitor(every_n_steps=10)
    model.fit(x, y, epochs=3, callbacks=[monitor])
    print(monitor.diagnose())
    monitor.plot("monitor.png")
    ```

    Raises:
        ValueError: for a bad argument; at `fit`, for an unknown layer or
            two monitors on one model.
    """

    def __init__(
        self,
        every_n_steps=10,
        layers=None,
        stats=STATS,
        log_dir=None,
        warn=True,
    ):
        super().__init__()
        self.every_n_steps = v.integer(
            "every_n_steps", every_n_steps, minimum=1
        )
        self.layers = check_layers(layers)
        if isinstance(stats, str):
            stats = [stats]
        stats = v.sequence("stats", stats, "a list of statistic names")
        if not stats:
            v.fail("stats", stats, f"a non-empty subset of {STATS}")
        for stat in stats:
            v.choice("stats", stat, STATS)
        self.stats = tuple(dict.fromkeys(stats))
        self.log_dir = v.path("log_dir", log_dir, allow_none=True)
        self.warn = v.boolean("warn", warn)
        self._reset()

    def _reset(self):
        self._history = None
        self._diagnosis = None
        self._names = []
        self._recorder = self._taps = self._writer = self._watched = None
        self._guard = self._switch = self._optimizer = None
        self.epoch_summaries = []
        self._since_read = 0

    # The parts bound to the model of a running `fit`: shared, not copied,
    # by `copy.deepcopy` (the results are plain data).
    _LIVE = (
        "model", "_guard", "_recorder", "_taps", "_writer", "_watched",
        "_switch", "_optimizer",
    )  # fmt: skip

    def __deepcopy__(self, memo):
        clone = type(self).__new__(type(self))
        memo[id(self)] = clone
        for key, value in vars(self).items():
            live = key in self._LIVE
            setattr(clone, key, value if live else copy.deepcopy(value, memo))
        return clone

    # -- results ------------------------------------------------------------

    @property
    def history(self):
        """``{stat: array [records, layers]}`` (float64)."""
        return {} if self._history is None else self._history.arrays()

    @property
    def steps(self):
        """The recorded update indices (0-based), ``int64 [records]``."""
        steps = [] if self._history is None else self._history.steps
        return np.array(steps, dtype=np.int64)

    @property
    def layer_names(self):
        """The watched layers' names, from input to output."""
        return list(self._names)

    def diagnose(self):
        """A short plain-text report: every finding (also with
        ``warn=False``) and layers whose update ratio is far from 1e-3."""
        if self._diagnosis is None:
            return "TrainingMonitor: nothing recorded yet."
        return self._diagnosis.report(list(self.steps), self.history)

    def plot(self, path=None):
        """Heat maps (layers x recorded updates, log colour scale) of every
        statistic, in one figure; saved to `path` (PNG by extension).
        Returns the matplotlib `Figure`."""
        return plot_heat_maps(
            list(self.steps), self.history, self.layer_names, path
        )

    # -- fit ----------------------------------------------------------------

    def on_train_begin(self, logs=None):
        self._reset()
        model = self.model
        self._guard = _fit_guard.guard_for(self)
        if _ACTIVE.get(model) is not None:
            raise ValueError(
                "Two `TrainingMonitor` callbacks watch model "
                f"{model.name!r} in one `fit`. Keep one of them."
            )
        internals.trainer.build_for_fit(model, self._guard.epoch_iterator)
        optimizer = internals.optimizer.optimizers_of(model.optimizer)[0]
        self._optimizer = optimizer
        if not optimizer.built:
            optimizer.build(model.trainable_variables)
        self._watched = WatchedLayers(model, self.layers)
        self._names = list(self._watched.names)
        stats = set(self.stats)
        spe = int(getattr(model, "steps_per_execution", 1) or 1)
        capacity = self._plan_capacity(spe, bool(stats & _ACTIVATION))
        self._capacity = capacity
        n = self.every_n_steps
        self._switch = RecordingSwitch(
            model, n, spe, self._accumulation(optimizer),
            (self.params or {}).get("steps"),
        )  # fmt: skip
        if stats & _GRADIENT:
            self._recorder = GradientRecorder(
                model, self._watched, n, capacity, "update_ratio" in stats,
                self._switch,
            )  # fmt: skip
        self._taps = ActivationTaps(
            model, self._watched, n, capacity, bool(stats & _ACTIVATION),
            self._switch,
        )  # fmt: skip
        strategy = getattr(model, "distribute_strategy", None)
        replicas = getattr(strategy, "num_replicas_in_sync", 1) or 1
        weighted = [bool(v) for v in self._watched.variables]
        self._history = MonitorHistory(self.stats, weighted, replicas)
        self._diagnosis = Diagnosis(self._watched.names, self.warn)
        self._spe = spe
        self._install(optimizer)

    def _accumulation(self, optimizer):
        """Micro-batches per update, or None where the host cannot follow
        the updates (a factor scheduled per epoch)."""
        if self._guard.accumulation_factors() is not None:
            return None
        return internals.optimizer.accumulation_steps(optimizer)

    def _plan_capacity(self, spe, activations):
        """Slots per buffer: the records of a whole epoch when `fit` knows
        its length (one read per epoch), within a memory budget; at least
        the records of two execution blocks (see `on_train_batch_begin`)."""
        n = self.every_n_steps
        least = 2 * (-(-spe // n)) + 4
        steps = (self.params or {}).get("steps")
        wanted = 64 if steps is None else -(-int(steps) // n) + 3
        units = 1
        if activations:
            units += sum(
                internals.layers.output_units(x) or 0
                for x in self._watched.layers
            )
        budget = _BUFFER_BUDGET // (units + 4 * len(self._watched.layers))
        return max(least, min(wanted, budget))

    def _install(self, optimizer):
        model = self.model
        _ACTIVE[model] = self
        self._guard.add(self, self._abort)
        iterations = int(keras.ops.convert_to_numpy(optimizer.iterations))
        self._taps.install(iterations)
        if self._recorder is not None:
            self._recorder.install(self._taps.set_step, iterations)
        else:
            internals.trainer.set_post_update(
                model,
                "keras_trainplus_monitor",
                lambda: self._taps.set_step(
                    keras.ops.cast(
                        keras.ops.convert_to_tensor(optimizer.iterations),
                        "int32",
                    )
                ),
            )
        if self.log_dir is not None:
            os.makedirs(self.log_dir, exist_ok=True)
            self._writer = TensorBoardWriter(self.log_dir)
        self._guard.rebuild_train_function()

    def _abort(self):
        """`fit` raised: keep the records so far (if they can be read),
        remove everything, and the train function that ran it (the next
        `fit` builds a stock one)."""
        try:
            self._read()
        except Exception:  # the abort must complete whatever failed
            pass
        self._uninstall()
        internals.trainer.rebuild_train_function(self.model)

    def _uninstall(self):
        model = self.model
        if _ACTIVE.get(model) is not self:
            return
        del _ACTIVE[model]
        if self._recorder is not None:
            self._recorder.uninstall()
        else:
            internals.trainer.set_post_update(
                model, "keras_trainplus_monitor", None
            )
        self._taps.uninstall()
        if self._writer is not None:
            self._writer.close()
        self._recorder = self._taps = self._writer = self._watched = None

    def on_train_batch_begin(self, batch, logs=None):
        # Read before the ring buffer could wrap in this execution block.
        # (A batch-begin hook: a batch-end one would make Keras convert the
        # logs to Python after every block, a host sync on JAX and torch.)
        limit = (self._capacity - 2) * self.every_n_steps
        if self._since_read + self._spe > limit:
            self._read()  # (resets the count)
        self._since_read += self._spe
        self._switch.before_block(batch)

    def _read(self):
        self._since_read = 0
        records = self._history.read(self.model, self._recorder, self._taps)
        for step, values, loss, finite in records:
            self._diagnosis.update(step, values, loss, finite)
        if self._writer is not None and records:
            self._writer.records(self._names, records)
        return records

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = len(self._history.steps)
        self._switch.sync(self._optimizer)

    def on_epoch_end(self, epoch, logs=None):
        self._read()
        summary = self._summarize(self._epoch_start)
        self.epoch_summaries.append(summary)
        if logs is not None:
            logs.update({k: value for k, (value, _, _) in summary.items()})
        if self._writer is not None and self._history.steps:
            step = self._history.steps[-1]
            last = {s: rows[-1] for s, rows in self._history.rows.items()}
            self._writer.epoch(step, self._watched, last)

    def _summarize(self, start):
        """``{"monitor/<stat>_max": (value, layer, update)}`` over the
        epoch's records (and ``_min``); NaN (no layer, update -1) for an
        epoch without a finite record, so every epoch has every key."""
        out = {}
        steps = self._history.steps[start:]
        stats = [s for s in self.stats if s in STATS]
        if self._history.clip_seen or "clipped" in self._history.rows:
            stats.append("clipped")
        for stat in stats:
            rows = self._history.rows.get(stat, [])
            data = np.array(rows[start:], dtype=np.float64)
            if stat == "clipped":  # the share of recorded updates clipped
                share = float(np.mean(data.max(1))) if data.size else np.nan
                out["monitor/clipped_share"] = (share, None, -1)
                continue
            if not data.size or not np.isfinite(data).any():
                for kind in ("max", "min"):
                    out[f"monitor/{stat}_{kind}"] = (float("nan"), None, -1)
                continue
            masked = np.where(np.isfinite(data), data, np.nan)
            for kind, pick in (("max", np.nanargmax), ("min", np.nanargmin)):
                record, layer = np.unravel_index(pick(masked), data.shape)
                out[f"monitor/{stat}_{kind}"] = (
                    float(data[record, layer]),
                    self._names[layer],
                    int(steps[record]),
                )
        return out

    def on_train_end(self, logs=None):
        self._read()
        self._uninstall()
        self._guard.done(self)
        self._guard.rebuild_train_function()

    def get_config(self):
        return {
            "every_n_steps": self.every_n_steps,
            "layers": None
            if self.layers is None
            else [x if isinstance(x, str) else x.name for x in self.layers],
            "stats": list(self.stats),
            "log_dir": None if self.log_dir is None else str(self.log_dir),
            "warn": self.warn,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
