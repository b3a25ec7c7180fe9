"""Checking of the driver's arguments: schedules, options, the forms
presets accept (per-epoch values, a per-step shape), and how a schedule
writes its value (its role, see `_fit_guard.FitGuard.claim`)."""

import numbers

import keras
import numpy as np

from keras_trainplus import _validation as v
from keras_trainplus.knobs import bound_knob
from keras_trainplus.knobs import targets as _targets
from keras_trainplus.knobs.knob import Knob
from keras_trainplus.knobs.user_knob import is_knob
from keras_trainplus.schedules.per_epoch import PerEpoch
from keras_trainplus.schedules.per_epoch import check_target_values
from keras_trainplus.schedules.schedule import Schedule
from keras_trainplus.schedules.schedule import as_schedule


def step_shape_schedule(step_shape):
    """Checks a `step_shape` argument: a per-step factor schedule, or None.
    It multiplies a base, so it must not read or write one itself."""
    if step_shape is None:
        return None
    shape = as_schedule(step_shape, "step_shape")
    if shape.uses_base():
        v.fail(
            "step_shape",
            step_shape,
            "a per-step schedule without "
            "`BaseValue` or `PerEpoch` leaves (it multiplies the base "
            "value, which the callback itself writes)",
        )
    return shape


def epoch_schedule(name, schedule, none_value=None, target=None):
    """dict / list / callable / number -> PerEpoch; schedules pass through.

    With `target`, the values known now are checked against its range,
    named as the user wrote them (`name`, ``name[epoch]``), and a callable's
    values when first evaluated."""
    if not isinstance(schedule, Schedule):
        schedule = v.scalar(schedule)
        if isinstance(schedule, numbers.Real) and not isinstance(
            schedule, bool
        ):
            if target is not None:
                v.target_value(target, schedule, name)
            schedule = [schedule]
        elif not (
            isinstance(schedule, (dict, list, tuple))
            or (callable(schedule) and not isinstance(schedule, type))
        ):
            v.fail_type(
                name,
                schedule,
                "a dict {epoch: value}, a list, a "
                "callable epoch -> value, a number or a "
                "keras_trainplus schedule",
            )
        with v.aliases({"values": name}):
            schedule = PerEpoch(schedule, none_value=none_value)
    if target is not None:
        check_target_values(target, schedule, name)
    return schedule


def layer_list(name, layers):
    """Checks a `layers` argument: None, or a non-empty list of layer
    names or layers."""
    if layers is None:
        return None
    expected = "None or a list of layer names or layers"
    layers = v.sequence(name, layers, expected)
    if not layers or not all(
        isinstance(x, keras.layers.Layer) or (isinstance(x, str) and x)
        for x in layers
    ):
        v.fail_type(name, layers, expected)
    return layers


def layer_names(layers):
    """`layers` for a config: names (None stays None)."""
    if layers is None:
        return None
    return [getattr(x, "name", x) for x in layers]


def momentum_range(cycle_momentum, base_momentum, max_momentum):
    """Checks the momentum arguments of the cyclical presets:
    ``(cycle_momentum, base_momentum, max_momentum)`` as bool, floats in
    [0, 1) with ``max >= base`` when cycling."""
    cycle = v.boolean("cycle_momentum", cycle_momentum)
    base = v.target_value("momentum", base_momentum, "base_momentum")
    peak = v.target_value("momentum", max_momentum, "max_momentum")
    if cycle and peak < base:
        v.fail("max_momentum", max_momentum, f">= `base_momentum` ({base})")
    return cycle, base, peak


def run_length(total_steps, epochs, steps_per_epoch):
    """Checks ``(total_steps, epochs, steps_per_epoch)``: `total_steps`, or
    both others, or none (the length then comes from `fit`)."""
    total = v.integer("total_steps", total_steps, minimum=2, allow_none=True)
    epochs_ = v.integer("epochs", epochs, minimum=1, allow_none=True)
    steps = v.integer(
        "steps_per_epoch", steps_per_epoch, minimum=1, allow_none=True
    )
    if total is None and (epochs_ is None) != (steps is None):
        raise ValueError(
            "Pass both `epochs` and `steps_per_epoch` (or `total_steps`, "
            "or none of them to take the length from `fit`). Received: "
            f"epochs={epochs!r}, steps_per_epoch={steps_per_epoch!r}"
        )
    return total, epochs_, steps


def check_schedules(schedules, argument="schedules"):
    """Checks a ``{target: schedule}`` dict; targets are names or `Knob`s."""
    if not isinstance(schedules, dict) or not schedules:
        v.fail_type(
            argument,
            schedules,
            "a non-empty dict {target: schedule} (or a function of the "
            "number of updates returning one)",
        )
    checked = {}
    for name, schedule in schedules.items():
        try:
            if not is_knob(name):
                _targets.check_target_name(name)
        except ValueError as error:
            raise ValueError(
                f"Argument `schedules` has an invalid target name: {error}"
            ) from None
        where = f"{argument}[{name!r}]"
        schedule = as_schedule(schedule, where)
        if len(schedule.per_epoch_leaves()) > 1:
            v.fail(
                where,
                schedule,
                "a schedule with at most one "
                "`PerEpoch` leaf, not several `PerEpoch` leaves (a "
                "hyperparameter has one base value; merge them into one)",
            )
        check_target_values(name, schedule, where)
        checked[name] = schedule
    return checked


def check_options(options, schedules):
    """Checks ``{target: {option: value}}``: `log_key` and `argument` (the
    name used in logs and messages) for any target, `mode` for
    ``"gradient_clip"``, `seed` for ``"gradient_noise"`` and the weight
    noise targets, `layers` for ``"weight_noise"`` and
    ``"dropout"``, `replace_schedule` for the learning rate."""
    if options is None:
        return {}
    if not isinstance(options, dict):
        v.fail_type("options", options, "a dict {target: {option: value}}")
    checked = {}
    for target, values in options.items():
        where = f"options[{target!r}]"
        if isinstance(schedules, dict) and target not in schedules:
            v.fail(
                where,
                values,
                f"options of a target in `schedules` "
                f"({', '.join(repr(t) for t in schedules)})",
            )
        if not isinstance(values, dict):
            v.fail_type(where, values, "a dict {option: value}")
        allowed = {"log_key", "argument"} | _target_options(target)
        for key, value in values.items():
            if key not in allowed:
                v.fail(
                    f"{where}[{key!r}]",
                    value,
                    "one of the options "
                    f"{sorted(allowed)} of target {target!r}",
                )
            if key in ("log_key", "argument"):
                v.string(f"{where}[{key!r}]", value)
        if "replace_schedule" in values:
            v.boolean(
                f"{where}['replace_schedule']", values["replace_schedule"]
            )
        if "seed" in values:
            v.integer(f"{where}['seed']", values["seed"], allow_none=True)
        if "mode" in values:
            from keras_trainplus.knobs.gradient_clip import CLIP_MODES

            v.choice(f"{where}['mode']", values["mode"], CLIP_MODES)
        checked[target] = dict(values)
    return checked


_TARGET_OPTIONS = {
    "gradient_clip": {"mode"},
    "gradient_noise": {"seed"},
    "dropout": {"layers"},
    "weight_noise": {"seed", "layers"},
    "learning_rate": {"replace_schedule"},
    "lr": {"replace_schedule"},
}


def _target_options(target):
    if not isinstance(target, str):
        return set()
    if target.startswith("weight_noise:"):
        return {"seed"}
    return _TARGET_OPTIONS.get(target, set())


def shapes_base(name, schedule):
    """A learning-rate schedule that multiplies the base by a shape."""
    from keras_trainplus.schedules.base_value import BaseValue

    return (
        name in ("learning_rate", "lr")
        and schedule.uses_base()
        and not isinstance(schedule, (BaseValue, PerEpoch))
    )


def role(name, schedule):
    """How a schedule writes its value (see `_fit_guard.FitGuard.claim`).
    A bare `PerEpoch` learning rate only writes the optimizer's own
    variable (no program): a base writer like newbob."""
    if name in ("learning_rate", "lr") and bound_knob.is_bare_base(schedule):
        return "base" if schedule.per_epoch_leaves() else "program"
    if schedule.per_epoch_leaves():
        return "base+program"
    return "program" if schedule.uses_base() else "owns"


_MAX_CHECKED = 1 << 20


def extreme_values(schedule, base, first, last):
    """``[(step, value)]`` that decide whether every value of steps
    `first`..`last` (just `first` if `last` is None) is in a target's
    range: one vectorized host evaluation (runs longer than 2^20 updates
    are sampled); ranges are intervals, so the smallest and largest finite
    values and the first non-finite one decide."""
    stop = first + 1 if last is None else last + 1
    if stop - first <= _MAX_CHECKED:
        steps = np.arange(first, stop, dtype=np.int64)
    else:
        steps = np.unique(
            np.linspace(first, stop - 1, _MAX_CHECKED).astype(np.int64)
        )
    values = np.asarray(
        keras.ops.convert_to_numpy(schedule.evaluate(steps, base=base)),
        np.float64,
    ).reshape(-1)
    finite = np.isfinite(values)
    index = [] if finite.all() else [int(np.argmin(finite))]
    if finite.any():
        inner = np.where(finite, values, np.nan)
        index += [int(np.nanargmin(inner)), int(np.nanargmax(inner))]
    return [(int(steps[i]), float(values[i])) for i in sorted(index)]


def target_config(target):
    """A target name as is; a `Knob` target as its config (it round-trips
    as a new `Knob` with the same name, value and dtype)."""
    return {"knob": target.get_config()} if is_knob(target) else target


def target_from_config(config, knobs):
    if not isinstance(config, dict):
        return config
    key = repr(sorted(config["knob"].items()))
    if key not in knobs:
        knobs[key] = Knob.from_config(config["knob"])
    return knobs[key]


def share_layers(value, memo):
    """Deep copies of a callback refer to the same Keras layers (given as
    dict keys or in lists), as to the same model."""
    items = []
    if isinstance(value, dict):
        items = [*value.keys(), *value.values()]
    elif isinstance(value, (list, tuple)):
        items = list(value)
    for item in [value, *items]:
        if isinstance(item, keras.layers.Layer):
            memo[id(item)] = item
        elif isinstance(item, (list, tuple)) and item is not value:
            share_layers(item, memo)


def built_at_fit(length):
    """The `schedules` of a preset whose `_resolve_schedules` builds them
    when `fit` starts (from the model or the fit's length): never called."""
    raise AssertionError("the schedules are built at fit")
