"""`HyperparameterScheduler`: the one driver of every scheduled value."""

import copy

import keras

from keras_trainplus import _cluster
from keras_trainplus import _export
from keras_trainplus import _internals as internals
from keras_trainplus import _validation as v
from keras_trainplus.callbacks import _arguments
from keras_trainplus.callbacks import _fit_guard
from keras_trainplus.callbacks import _run_plan
from keras_trainplus.knobs import bound_knob
from keras_trainplus.knobs import targets as _targets
from keras_trainplus.knobs.user_knob import is_knob


@_export.register
class HyperparameterScheduler(keras.callbacks.Callback):
    """Schedules any hyperparameter, per step, inside the compiled train step.

    The one driver (fastai's ``ParamScheduler``, in-graph): update ``i``
    uses exactly ``schedule(i)`` at any `steps_per_execution`, under XLA,
    `tf.distribute`, JAX and torch. How a value travels, targets, options,
    one writer per value, failures: [docs/architecture.md](
    ../docs/architecture.md).

    Targets (the list: `docs/architecture.md`): ``"learning_rate"``,
    ``"momentum"``, ``"gradient_clip"``, ``"dropout:<layer>"``,
    ``"lr_multiplier:<layer>"``, ``"<layer>.<knob>"``, any `Knob`, ...
    `logs` gets the value each epoch's last update used, under its name.

    Args:
        schedules: dict ``{target: schedule}`` (a schedule or a number), or
            a function of the number of updates `fit` runs returning one
            (curves that span the run).
        origin: `"fit"` (default: step 0 is this `fit`'s first update, a
            resumed fit counts the epochs done) or `"global"` (iterations).
        verbose: int. 1 prints the values at every epoch start.
        options: dict ``{target: {option: value}}`` (e.g. the clip
            ``"mode"``, the ``"layers"`` of ``"dropout"``). Defaults to None.

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
        ValueError: for an unknown target or option or a non-schedule
            value; at `fit`, for a value out of range at any planned step,
            two writers of one value, or an optimizer without the target.
    """

    def __init__(self, schedules, origin="fit", verbose=0, options=None):
        super().__init__()
        self.origin = v.choice("origin", origin, ("fit", "global"))
        self.verbose = v.integer("verbose", verbose, minimum=0)
        if callable(schedules) and not isinstance(schedules, (dict, type)):
            self.schedules = schedules  # a function of the fit's length
        else:
            self.schedules = _arguments.check_schedules(schedules)
        self.options = _arguments.check_options(options, self.schedules)
        self._reset_runtime()

    # -- state ------------------------------------------------------------

    def _reset_runtime(self):
        self._bases = {}  # exact values written by PerEpoch leaves
        self._epoch_bases = {}  # the base the current epoch's updates use
        self._bindings = {}
        self._active = {}
        self._offset = None
        self._installed = False
        self._guard = None
        self._factors = None

    # Per-fit state that deep copies leave out (they start fresh).
    _RUNTIME = ("_model", "_bindings", "_active", "_guard")

    def __deepcopy__(self, memo):
        new = type(self).__new__(type(self))
        memo[id(self)] = new
        targets = self.schedules if isinstance(self.schedules, dict) else {}
        for target in list(targets) + list(self.options):
            if is_knob(target):
                memo[id(target)] = target  # the user's variable, shared
        for key, value in self.__dict__.items():
            if key in self._RUNTIME:
                continue
            _arguments.share_layers(value, memo)
            new.__dict__[key] = copy.deepcopy(value, memo)
        new.set_model(None)
        new._reset_runtime()
        return new

    @property
    def _trainplus_name(self):
        return type(self).__name__  # how writers are named in messages

    def _option(self, target, key, default=None):
        return self.options.get(target, {}).get(key, default)

    # -- hooks for presets -------------------------------------------------

    def _resolve_schedules(self):
        """The schedules to install for this `fit`: `schedules`, or what
        the function passed as `schedules` returns for the fit's length."""
        if isinstance(self.schedules, dict):
            return dict(self.schedules)
        return _arguments.check_schedules(
            self.schedules(self._fit_length(_LENGTH_FIX)),
            f"schedules({type(self).__name__} length)",
        )

    def _check_plan(self, first_step, last_step):
        """Called at install with the relative steps this fit will run."""

    # -- callback ---------------------------------------------------------

    def on_train_begin(self, logs=None):
        self._reset_runtime()
        internals.version.check_keras_version()
        model = self.model
        _cluster.check_strategy_support(model, type(self).__name__)
        self._active = self._resolve_schedules()
        self._bindings = {
            name: _targets.bind(name, model, **self._bind_options(name))
            for name in self._active
        }
        self._guard = _fit_guard.guard_for(self)
        for name, binding in self._bindings.items():
            role = _arguments.role(name, self._active[name])
            if role == "owns":
                binding.own()
            for key, what in binding.value_keys():
                self._guard.claim(key, self, name, role, what)

    def _steps_per_epoch(self):
        return (self.params or {}).get("steps")

    def _plan(self):
        """The `RunPlan` of this fit (Keras's or a scheduled accumulation,
        found among the fit's callbacks)."""
        params = self.params or {}
        optimizer = internals.optimizer.optimizers_of(self.model.optimizer)[0]
        guard = self._guard or _fit_guard.guard_for(self)
        return _run_plan.RunPlan(
            params.get("steps"),
            params.get("epochs"),
            internals.optimizer.accumulation_steps(optimizer),
            guard.accumulation_factors() or self._accumulation_factors(),
        )

    def _accumulation_factors(self):
        """epoch -> factor when this callback schedules the gradient
        accumulation (asked by every driver of the fit), else None."""
        schedules = self.schedules
        if not isinstance(schedules, dict) or _TARGET not in schedules:
            return None
        if self._factors is None:
            self._factors = _run_plan.factors_of(
                schedules[_TARGET], self._argument(_TARGET)
            )
        return self._factors

    def _fit_length(self, fix):
        return self._plan().length(type(self).__name__, fix)

    def _compute_offset(self, epoch, iterations):
        if self.origin == "global":
            return 0
        if epoch == 0 or all(
            bound_knob.is_bare_base(s) for s in self._active.values()
        ):
            return iterations  # (values per epoch only: no step to place)
        return self._plan().offset(epoch, iterations, type(self).__name__)

    def _install(self, epoch):
        if not self._bindings:  # a preset with nothing to schedule here
            self._offset = 0
            return
        binding = next(iter(self._bindings.values()))
        iterations = binding.iterations()
        offset = self._compute_offset(epoch, iterations)
        first = iterations - offset
        plan = self._plan()
        last = None
        if plan.steps is not None and plan.epochs is not None:
            last = plan.last_update(
                epoch, iterations, binding.micro_iterations()
            )
            last -= offset
        self._check_plan(first, last)
        for name, schedule in self._active.items():
            schedule.set_horizon(None if last is None else last + 1)
            self._check_range(name, schedule, epoch, first, last)
        self._guard.add(self, self._abort)
        self._installed = True  # from here on, an abort undoes it all
        for name, schedule in self._active.items():
            self._bindings[name].install(schedule, offset)
        self._guard.after_epoch_begin(self._record_bases)
        self._guard.rebuild_train_function()
        self._offset = offset
        self._installed = True

    def _abort(self):
        """After an exception in `fit`: the values of before `fit`, the
        stock train step."""
        if not self._installed:
            return
        for binding in self._bindings.values():
            binding.restore_original()
            binding.uninstall()
        internals.trainer.rebuild_train_function(self.model)
        self._installed = False

    def _check_external_writes(self):
        for binding in self._bindings.values():
            binding.check_external_write(self._trainplus_name)

    def on_epoch_begin(self, epoch, logs=None):
        self.model  # on JAX: sync the train state before writing variables
        if not self._installed:
            self._install(epoch)
        self._check_external_writes()
        plan = self._plan()
        for name, schedule in self._active.items():
            binding = self._bindings[name]
            for leaf in schedule.per_epoch_leaves():
                value = leaf.value_at(epoch)
                if value is None:
                    continue
                self._bases[name] = binding.check_value(
                    name, value, self._argument(name)
                )
                binding.set_base(value)
            binding.epoch_begin(
                plan.position(
                    epoch,
                    binding.iterations(),
                    binding.micro_iterations(),
                    self._offset,
                )
            )
        self._record_bases()
        if self.verbose:
            self._print_values(epoch)

    def _print_values(self, epoch):
        values = ", ".join(
            f"{self._bindings[n].log_key}={val:.6g}"
            for n, val in self._values(next_step=True).items()
        )
        print(f"\nEpoch {epoch + 1}: {type(self).__name__} {values}")

    def _argument(self, name):
        return self._option(name, "argument", f"schedules[{name!r}]")

    def _bind_options(self, name):
        return {
            key: value
            for key, value in self.options.get(name, {}).items()
            if key != "argument"
        }

    def _check_range(self, name, schedule, epoch, first, last):
        """Checks every value this `fit` will use before any update
        (per-epoch values are checked again as they are written)."""
        base = None
        if schedule.uses_base():
            leaves = schedule.per_epoch_leaves()
            value = leaves[0].value_at(epoch) if leaves else None
            base = self._base(name) if value is None else float(value)
        binding, argument = self._bindings[name], self._argument(name)
        for step, value in _arguments.extreme_values(
            schedule, base, first, last
        ):
            binding.check_value(name, value, f"{argument}(step {step})")

    def _checked(self, values):
        for name, value in values.items():
            self._bindings[name].check_value(name, value, self._argument(name))
        return values

    def _record_bases(self):
        """Notes the base each target's updates use this epoch: after every
        callback's `on_epoch_begin` (another callback may write it)."""
        for name, schedule in self._active.items():
            if schedule.uses_base():
                self._epoch_bases[name] = self._base(name)

    def _base(self, name):
        # The exact value written (the knob may be float32).
        return self._bases.get(name, self._bindings[name].base())

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
                base = (
                    self._base(name)
                    if next_step
                    else self._epoch_bases.get(name, self._base(name))
                )
            out[name] = bound_knob.host_value(schedule, step, base)
        return out

    def on_epoch_end(self, epoch, logs=None):
        if not self._installed:
            return
        self.model  # on JAX: make sure iterations are synced
        self._check_external_writes()
        for name, value in self._checked(self._values(False)).items():
            if logs is None:
                continue
            binding = self._bindings[name]
            if _arguments.shapes_base(name, self._active[name]):
                # What Python reads and writes is the base; the value the
                # last update used is the effective one.
                logs[binding.log_key] = self._epoch_bases.get(
                    name, self._base(name)
                )
                logs["effective_learning_rate"] = value
            else:
                logs[binding.log_key] = binding.logged(value)
        for name, value in self._checked(self._values(True)).items():
            self._bindings[name].mirror(value)

    def on_train_end(self, logs=None):
        if self._installed:
            model = self.model
            self._check_external_writes()
            for name, value in self._values(next_step=True).items():
                self._bindings[name].mirror(value)
                self._bindings[name].uninstall()
            internals.trainer.rebuild_train_function(model)
            self._installed = False
        if self._guard is not None:
            self._guard.done(self)

    # -- config -------------------------------------------------------------

    def get_config(self):
        schedules = self.schedules
        if not isinstance(schedules, dict):
            schedules = _export.serialize_callable("schedules", schedules)
        else:
            schedules = [
                [_arguments.target_config(target), _export.serialize(schedule)]
                for target, schedule in schedules.items()
            ]
        return {
            "schedules": schedules,
            "origin": self.origin,
            "verbose": self.verbose,
            "options": [
                [_arguments.target_config(target), values]
                for target, values in self.options.items()
            ],
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        knobs = {}
        schedules = config["schedules"]
        if isinstance(schedules, dict) and "class_name" not in schedules:
            schedules = list(schedules.items())  # the older form
        if isinstance(schedules, list):
            config["schedules"] = {
                _arguments.target_from_config(t, knobs): _export.deserialize(s)
                for t, s in schedules
            }
        else:
            config["schedules"] = _export.deserialize(schedules)
        config["options"] = {
            _arguments.target_from_config(t, knobs): values
            for t, values in config.get("options") or []
        } or None
        return cls(**config)


_TARGET = _run_plan.TARGET
_LENGTH_FIX = "give the callback the run's length (e.g. `total_steps`)"
