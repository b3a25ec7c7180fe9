"""`HyperparameterScheduler`: the one driver of every scheduled value."""

import copy

import keras

from keras_trainplus import _cluster
from keras_trainplus import _export
from keras_trainplus import _keras_hooks as hooks
from keras_trainplus import _targets
from keras_trainplus import _validation as v
from keras_trainplus.schedules.per_epoch import PerEpoch
from keras_trainplus.schedules.schedule import Schedule
from keras_trainplus.schedules.schedule import as_schedule


@_export.register
class HyperparameterScheduler(keras.callbacks.Callback):
    """Schedules any hyperparameter, per step, inside the compiled train step.

    fastai's ``ParamScheduler`` for Keras, done so that it actually takes
    effect: each schedule is compiled into the train step as a function of
    ``optimizer.iterations``, so update ``i`` uses exactly ``schedule(i)``
    with any `steps_per_execution`, with or without XLA, under
    `tf.distribute` (every replica and worker computes the same value) and
    on JAX and torch. No Python runs per batch.

    Targets:

    * ``"learning_rate"`` (or ``"lr"``, which is also the log key then): the
      optimizer's learning rate. Its knob is the optimizer's own
      learning-rate variable, so `schedules.BaseValue()` /
      `schedules.PerEpoch(...)` leaves read it: ``PerEpoch([...]) *
      Linear(0.0, 1.0, 500)`` is a per-epoch list with a per-step warmup,
      ``BaseValue() * ...`` follows whatever else writes the learning rate
      once per epoch (newbob, `ReduceLROnPlateau`).
    * ``"momentum"``: SGD's `momentum` (the optimizer must be created with
      momentum > 0), or `beta_1` of Adam, AdamW, Adamax, Lamb and Lion;
      ``"beta_1"``, ``"beta_2"``: of those Adam-family optimizers;
      ``"weight_decay"``: the decoupled weight decay of any optimizer.
    * ``"gradient_clip"``: a global-norm clip threshold (`+inf` = off),
      applied to the aggregated gradient (see `GradientClipScheduler`).
    * ``"dropout"``: the rate of every dropout layer of the model (stock
      Keras ones included, see `DropoutScheduler`); ``"dropout:<name>"``:
      one layer.

    Everything reaches the compiled step without retracing after the first
    epoch, on TF (plain, XLA, `tf.distribute`), JAX and torch, and nothing
    changes what models and optimizers save.

    Step origin: with ``origin="fit"`` (default) step 0 is the first update
    of this `fit` call (resuming with `initial_epoch` counts the epochs
    already done, as long as the number of steps per epoch is known); with
    ``origin="global"`` the step is ``optimizer.iterations`` as is, like a
    `LearningRateSchedule` passed to the optimizer.

    At the end of every epoch the value used by the epoch's last update is
    written into `logs` (as a Python float) under the target's name, so
    History, CSVLogger, TensorBoard and the progress bar show it (list this
    callback before CSVLogger/TensorBoard). The optimizer's learning-rate
    variable and momentum attributes are set to the next step's value, so
    checkpoints and `get_config()` hold the current value.

    The schedules are installed when the first epoch starts and removed when
    `fit` ends, each time rebuilding the train function (one trace per `fit`
    call, the same cost as a fresh model).

    Args:
        schedules: dict ``{target: schedule}``; a schedule is a
            `keras_trainplus.schedules.Schedule` or a number (constant).
        origin: `"fit"` or `"global"`. Defaults to `"fit"`.
        verbose: int. 1 prints the values at the start of every epoch.

    Example:

    ```python
    from keras_trainplus import callbacks, schedules as S

    lr = S.Join([S.Linear(0.0, 1e-3, 500), S.Cosine(1e-3, 1e-5, 9500)],
                boundaries=[500])
    model.fit(x, y, epochs=10, callbacks=[
        callbacks.HyperparameterScheduler({"learning_rate": lr}),
    ])
    ```

    Raises:
        ValueError: for an unknown target, a non-schedule value, several
            `PerEpoch` leaves in one schedule, or (at `fit` time) an
            optimizer that cannot take the target.
    """

    def __init__(self, schedules, origin="fit", verbose=0):
        self._init_driver(origin, verbose)
        self.schedules = _check_schedules(schedules)

    def _init_driver(self, origin, verbose):
        """Initializes the driver state (presets call this directly)."""
        keras.callbacks.Callback.__init__(self)
        self.origin = v.choice("origin", origin, ("fit", "global"))
        self.verbose = v.integer("verbose", verbose, minimum=0)
        self._log_keys = {}
        self._target_options = {}
        self._reset_runtime()


    # -- state ------------------------------------------------------------

    def _reset_runtime(self):
        self._bases = {}
        self._bindings = {}
        self._active = {}
        self._offset = None
        self._installed = False

    def __deepcopy__(self, memo):
        new = type(self).__new__(type(self))
        memo[id(self)] = new
        for key, value in self.__dict__.items():
            if key in ("_model", "_bindings", "_active"):
                continue
            new.__dict__[key] = copy.deepcopy(value, memo)
        new._model = None
        new._reset_runtime()
        return new

    # -- hooks for presets -------------------------------------------------

    def _resolve_schedules(self):
        """The schedules to install for this `fit` (presets may use params)."""
        return dict(self.schedules)

    def _check_plan(self, first_step, last_step):
        """Called at install with the relative steps this fit will run."""

    # -- callback ---------------------------------------------------------

    def on_train_begin(self, logs=None):
        self._reset_runtime()
        hooks.check_keras_version()
        model = self.model
        _cluster.check_strategy_support(model, type(self).__name__)
        self._active = self._resolve_schedules()
        self._bindings = {
            name: _targets.bind(name, model,
                                **self._target_options.get(name, {}))
            for name in self._active
        }

    def _steps_per_epoch(self):
        return (self.params or {}).get("steps")

    def _fit_length(self, fix):
        """Updates `fit` will run (epochs x steps per epoch), or a clear
        error naming `fix` when the steps per epoch are unknown."""
        params = self.params or {}
        steps, epochs = params.get("steps"), params.get("epochs")
        if steps is None or epochs is None:
            raise ValueError(
                f"{type(self).__name__} needs the number of updates, but "
                "`fit` does not know the steps per epoch (a dataset of "
                "unknown length). Pass `steps_per_epoch` to `fit`, or "
                f"{fix}."
            )
        return steps * epochs

    def _compute_offset(self, epoch, iterations):
        if self.origin == "global":
            return 0
        if epoch == 0:
            return iterations
        steps = self._steps_per_epoch()
        if steps is None:
            raise ValueError(
                f"`fit` starts at epoch {epoch} (resuming), but the number of "
                "steps per epoch is unknown, so the schedule's step 0 cannot "
                "be placed. Pass `steps_per_epoch` to `fit`, or use "
                f"`{type(self).__name__}(..., origin='global')`."
            )
        return iterations - epoch * steps

    def _install(self, epoch):
        binding = next(iter(self._bindings.values()))
        iterations = binding.iterations()
        offset = self._compute_offset(epoch, iterations)
        first = iterations - offset
        steps = self._steps_per_epoch()
        epochs = (self.params or {}).get("epochs")
        last = None
        if steps is not None and epochs is not None:
            last = first + (epochs - epoch) * steps - 1
        self._check_plan(first, last)
        for name, schedule in self._active.items():
            _set_horizon(schedule, last)
            self._bindings[name].install(schedule, offset)
        hooks.rebuild_train_function(self.model)
        self._offset = offset
        self._installed = True

    def on_epoch_begin(self, epoch, logs=None):
        self.model  # on JAX: sync the train state before writing variables
        if not self._installed:
            self._install(epoch)
        for name, schedule in self._active.items():
            binding = self._bindings[name]
            for leaf in schedule.per_epoch_leaves():
                value = leaf.value_at(epoch)
                if value is None:
                    continue
                self._bases[name] = float(value)
                binding.set_base(value)
            binding.epoch_begin(binding.iterations() - self._offset)
        if self.verbose:
            values = ", ".join(
                f"{self._bindings[n].log_key}={val:.6g}"
                for n, val in self._values(next_step=True).items()
            )
            print(f"\nEpoch {epoch + 1}: {type(self).__name__} {values}")

    def _values(self, next_step):
        """Host-side values of every target (last update's or next one's)."""
        out = {}
        for name, schedule in self._active.items():
            binding = self._bindings[name]
            step = binding.iterations() - self._offset
            if not next_step:
                step = max(step - 1, 0)
            base = None
            if schedule.uses_base():
                # The exact value written (the knob may be float32).
                base = self._bases.get(name, binding.base())
            out[name] = _targets.host_value(schedule, step, base)
        return out

    def on_epoch_end(self, epoch, logs=None):
        if not self._installed:
            return
        self.model  # on JAX: make sure iterations are synced
        for name, value in self._values(next_step=False).items():
            if logs is not None:
                key = self._log_keys.get(name, self._bindings[name].log_key)
                logs[key] = value
        for name, value in self._values(next_step=True).items():
            self._bindings[name].mirror(value)

    def on_train_end(self, logs=None):
        if not self._installed:
            return
        model = self.model
        for name, value in self._values(next_step=True).items():
            self._bindings[name].mirror(value)
            self._bindings[name].uninstall()
        hooks.rebuild_train_function(model)
        self._installed = False

    # -- config -------------------------------------------------------------

    def get_config(self):
        return {
            "schedules": {
                name: _export.serialize(s) for name, s in self.schedules.items()
            },
            "origin": self.origin,
            "verbose": self.verbose,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["schedules"] = {
            name: _export.deserialize(s)
            for name, s in config["schedules"].items()
        }
        return cls(**config)


def epoch_schedule(name, schedule, none_value=None):
    """dict / callable / number -> PerEpoch; schedules pass through."""
    if isinstance(schedule, Schedule):
        return schedule
    if isinstance(schedule, bool):
        raise ValueError(f"Argument `{name}` must be a dict {{epoch: value}},"
                         f" a callable or a schedule. Received: {schedule!r}")
    if isinstance(schedule, (int, float)):
        return PerEpoch([schedule], none_value=none_value)
    if isinstance(schedule, (dict, list, tuple)) or callable(schedule):
        return PerEpoch(schedule, none_value=none_value)
    raise ValueError(
        f"Argument `{name}` must be a dict {{epoch: value}}, a callable "
        f"epoch -> value, or a keras_trainplus schedule. Received: "
        f"{name}={schedule!r}"
    )


def _check_schedules(schedules):
    if not isinstance(schedules, dict) or not schedules:
        raise ValueError(
            "Argument `schedules` must be a non-empty dict "
            f"{{target: schedule}}. Received: schedules={schedules!r}"
        )
    checked = {}
    for name, schedule in schedules.items():
        _targets.check_target_name(name)
        schedule = as_schedule(schedule, f"schedules[{name!r}]")
        if len(schedule.per_epoch_leaves()) > 1:
            raise ValueError(
                f"The schedule for {name!r} has several `PerEpoch` leaves; "
                "a hyperparameter has one base value. Merge them into one. "
                f"Received: {schedule!r}"
            )
        checked[name] = schedule
    return checked


def _walk(schedule):
    yield schedule
    for child in schedule.children():
        if isinstance(child, Schedule):
            yield from _walk(child)


def _set_horizon(schedule, last_step):
    """Tells schedules that tabulate user callables how far `fit` goes."""
    for node in _walk(schedule):
        if hasattr(node, "_horizon"):
            node._horizon = None if last_step is None else last_step + 1
