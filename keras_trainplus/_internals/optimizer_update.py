"""Optimizer internals: the update step (hyperparameters, clipping, EMA).

* **In-graph optimizer hyperparameters** (``momentum``, ``beta_1``, ...):
  Keras reads them as Python floats at trace time. We substitute per-step
  tensors while the update step runs. SGD's update step branches on
  ``momentum != 0`` in Python, so for SGD we run the update documented for
  `keras.optimizers.SGD` (the same formula, with a tensor momentum).
* **Gradient programs after the cross-replica sum** on TF (Keras clips
  each replica's gradient before the all-reduce): we wrap
  `_all_reduce_sum_gradients` and clip (then add noise to) its result, so
  every replica sees the same aggregated gradient, with no extra
  communication.
* **Optimizer attributes overridden on the instance** (a scheduled value
  mirrored where Python reads it).
* **Skipping one EMA finalize** after an aborted `fit` on JAX.
"""

import threading

import keras
from keras import ops

from keras_trainplus._internals import method_layers
from keras_trainplus._internals import optimizer as optimizer_core
from keras_trainplus._internals.version import hook
from keras_trainplus._internals.version import require


@hook("3.15")
def has_momentum_slots(optimizer):
    if isinstance(optimizer, keras.optimizers.SGD):
        return bool(optimizer.momentum)
    return True


_substituted = method_layers.substituted


def _sgd_momentum_update(
    optimizer, gradient, variable, learning_rate, momentum
):
    """SGD with momentum as documented for `keras.optimizers.SGD`.

    velocity = momentum * velocity - learning_rate * g
    w = w + velocity                                  (plain)
    w = w + momentum * velocity - learning_rate * g   (nesterov)
    """
    lr = ops.cast(learning_rate, variable.dtype)
    gradient = ops.cast(gradient, variable.dtype)
    momentum = ops.cast(momentum, variable.dtype)
    m = optimizer.momentums[optimizer._get_variable_index(variable)]
    optimizer.assign(
        m, ops.subtract(ops.multiply(m, momentum), ops.multiply(gradient, lr))
    )
    if optimizer.nesterov:
        optimizer.assign_add(
            variable,
            ops.subtract(ops.multiply(m, momentum), ops.multiply(gradient, lr)),
        )
    else:
        optimizer.assign_add(variable, m)


@hook("3.15")
def set_hyperparameter_programs(optimizer, programs):
    """Makes optimizer attributes per-step tensors ``program(step)``.

    `programs` maps attribute names (``"momentum"``, ``"beta_1"``) to
    callables of ``optimizer.iterations``. Pass ``{}`` to remove. They are
    substituted while `update_step` runs (and `_apply_weight_decay` for
    ``"weight_decay"``), as layers over those methods
    (`optimizer.set_method_layer`).
    """
    state = optimizer_core.state(optimizer)
    state["hyper"] = dict(programs)
    for name in programs:
        require(optimizer, name, f"schedule `{name}`")
    cache = optimizer_core.caches(optimizer)
    all_programs = dict(programs)

    def values():
        def compute():
            step = optimizer_core.step(optimizer)
            return {name: fn(step) for name, fn in all_programs.items()}

        return cache.get("hyper", compute)

    per_step = {k: f for k, f in programs.items() if k != "weight_decay"}
    layer = method_layers.set_method_layer
    layer(
        optimizer,
        "_apply_weight_decay",
        "hyper",
        _weight_decay_layer(optimizer, values)
        if "weight_decay" in programs
        else None,
        rank=1,
    )
    layer(
        optimizer,
        "update_step",
        "hyper",
        _update_step_layer(optimizer, values, per_step) if per_step else None,
        rank=0,
    )
    method_layers.per_variable_updates(optimizer, "hyper", bool(per_step))
    graph = per_step and keras.backend.backend() != "torch"
    layer(
        optimizer,
        "_backend_update_step",
        "hyper",
        _values_first(values) if graph else None,
        rank=1,
    )
    if not programs:
        optimizer_core.forget_if_idle(optimizer)


def _weight_decay_layer(optimizer, values):
    def factory(inner):
        def apply_weight_decay(variables):
            with _substituted(
                optimizer, {"weight_decay": values()["weight_decay"]}
            ):
                return inner(variables)

        return apply_weight_decay

    return factory


def _values_first(values):
    """Builds the values outside the per-variable colocation scopes of
    `update_step`, next to the learning-rate program: the graph optimizer
    can then merge their common work. `update_step` reads them from the
    per-graph cache."""

    def factory(inner):
        def backend_update_step(grads, trainable_variables, learning_rate):
            values()
            return inner(grads, trainable_variables, learning_rate)

        return backend_update_step

    return factory


def _update_step_layer(optimizer, values, programs):
    is_sgd = isinstance(optimizer, keras.optimizers.SGD)

    def factory(inner):
        def update_step(gradient, variable, learning_rate):
            vals = {k: v for k, v in values().items() if k in programs}
            with _substituted(optimizer, vals):
                if is_sgd and "momentum" in vals:
                    return _sgd_momentum_update(
                        optimizer,
                        gradient,
                        variable,
                        learning_rate,
                        vals["momentum"],
                    )
                return inner(gradient, variable, learning_rate)

        return update_step

    return factory


@hook("3.15")
def update_hyperparameter_programs(optimizer, changes):
    """Adds (callable) or removes (None) per-attribute programs."""
    programs = dict(optimizer_core.state(optimizer)["hyper"])
    for name, fn in changes.items():
        if fn is None:
            programs.pop(name, None)
        else:
            programs[name] = fn
    set_hyperparameter_programs(optimizer, programs)


@hook("3.15")
def clear_programs(optimizer):
    optimizer_core.set_learning_rate_program(optimizer, None)
    set_hyperparameter_programs(optimizer, {})
    for kind in GRADIENT_PROGRAMS:
        set_gradient_program(optimizer, kind, None)


# The order in which gradient programs run on the aggregated gradient:
# observers first (before any clipping), then clipping, an observer of the
# clipped gradient, then noise (so the noise keeps its standard deviation).
GRADIENT_PROGRAMS = ("record", "clip", "record_clipped", "noise")

_VARIABLES = threading.local()


@hook("3.15")
def gradient_variables(optimizer):
    """Inside a gradient program: the variables of its `grads`, in order
    (Keras variables, or on TF the variables' values as the update step
    sees them: compare both, see `same_variable`)."""
    return list(_VARIABLES.current)


@hook("3.15")
def same_variable(keras_variable, seen):
    """Whether `seen` (from `gradient_variables`) is `keras_variable`."""
    return seen is keras_variable or seen is getattr(
        keras_variable, "value", None
    )


@hook("3.15")
def set_gradient_program(optimizer, kind, program):
    """Runs ``program(grads, step)`` on the gradient the update uses.

    `kind` is ``"record"`` (an observer of the gradient before clipping),
    ``"clip"``, ``"record_clipped"`` (an observer of the clipped gradient)
    or ``"noise"``, run in that order; `gradient_variables` names the
    variables of `grads`. Observers return `grads` unchanged. On TF
    the programs run on the all-reduced gradients (inside
    `_backend_update_step`, after `_all_reduce_sum_gradients`), so under
    `tf.distribute` they act on the aggregated gradient exactly as on one
    device, identically on every replica. Elsewhere (single process JAX and
    torch, where the gradient is already global) they replace
    `_clip_gradients`. The optimizer's own `clipnorm`/`global_clipnorm`/
    `clipvalue` are bypassed while a clip program is installed; with only
    observers they run between them (on TF, on the aggregated gradient).
    None removes."""
    programs = optimizer_core.state(optimizer).setdefault("gradient", {})
    if program is None:
        programs.pop(kind, None)
    else:
        programs[kind] = program
    for name in ("_clip_gradients", "_all_reduce_sum_gradients"):
        optimizer.__dict__.pop(name, None)
    observed = _observe_variables(optimizer, programs)
    if not programs:
        optimizer_core.forget_if_idle(optimizer)
        return
    require(optimizer, "_clip_gradients", "schedule gradient programs")
    stock_clip = type(optimizer)._clip_gradients
    record = programs.get("record")
    clipped = "clip" in programs

    def run(grads, clip, variables):
        step = optimizer_core.step(optimizer)
        grads = list(grads)
        previous = getattr(_VARIABLES, "current", None)
        _VARIABLES.current = variables
        try:
            if record is not None:
                grads = record(grads, step)
            grads = clip(grads)
            for kind in GRADIENT_PROGRAMS[1:]:
                if kind in programs:
                    grads = programs[kind](list(grads), step)
        finally:
            _VARIABLES.current = previous
        return grads

    def own_clip(grads):
        return grads if clipped else stock_clip(optimizer, grads)

    if keras.backend.backend() == "tensorflow":
        _run_after_all_reduce(optimizer, run, own_clip, observed)
        return

    def clip_gradients(grads):
        return run(grads, own_clip, getattr(_VARIABLES, "applying", []))

    optimizer.__dict__["_clip_gradients"] = clip_gradients


def _observe_variables(optimizer, programs):
    """With an observer installed, keeps the variables of each apply for
    `gradient_variables`; returns whether one is installed."""
    observed = "record" in programs or "record_clipped" in programs
    method_layers.set_method_layer(
        optimizer,
        "_backend_apply_gradients",
        "gradient_variables",
        _capture_variables if observed else None,
        rank=9,
    )
    return observed


def _capture_variables(inner):
    """Keeps the variables of the running apply for `gradient_variables`
    (`_clip_gradients` only gets the gradients)."""

    def backend_apply_gradients(grads, trainable_variables):
        previous = getattr(_VARIABLES, "applying", None)
        _VARIABLES.applying = list(trainable_variables)
        try:
            return inner(grads, trainable_variables)
        finally:
            _VARIABLES.applying = previous

    return backend_apply_gradients


def _run_after_all_reduce(optimizer, run, own_clip, late_clip):
    """On TF: the programs run on the all-reduced gradient; with an observer
    (`late_clip`) the optimizer's own clipping runs there too, after it."""
    require(
        optimizer,
        "_all_reduce_sum_gradients",
        "act on the aggregated gradient",
    )
    original = type(optimizer)._all_reduce_sum_gradients

    def all_reduce_then_run(grads_and_vars):
        reduced = list(original(optimizer, grads_and_vars))
        clip = own_clip if late_clip else list
        grads = run([g for g, _ in reduced], clip, [v for _, v in reduced])
        return [(g, v) for g, (_, v) in zip(grads, reduced)]

    def clip_before_reduce(grads):
        return grads if late_clip else own_clip(grads)

    optimizer.__dict__["_clip_gradients"] = clip_before_reduce
    optimizer.__dict__["_all_reduce_sum_gradients"] = all_reduce_then_run


@hook("3.15")
def skip_next_finalize(optimizer):
    """Makes the optimizer's next `finalize_variable_values` (which `fit`'s
    `finally` calls on JAX after an abort; it copies the EMA into the
    weights when `use_ema=True`) a no-op, once."""
    if not getattr(optimizer, "use_ema", False):
        return

    def finalize_variable_values(var_list):
        optimizer.__dict__.pop("finalize_variable_values", None)

    optimizer.__dict__["finalize_variable_values"] = finalize_variable_values


@hook("3.15")
def instance_attribute(optimizer, name):
    """The value of `name` set on this optimizer instance (None if the
    class default or a constructor value applies)."""
    return optimizer.__dict__.get(name)


@hook("3.15")
def set_instance_attribute(optimizer, name, value):
    """Sets a hyperparameter attribute (``momentum``, ``beta_1``) on the
    instance without Keras's attribute tracking (None removes it)."""
    if value is None:
        optimizer.__dict__.pop(name, None)
    else:
        optimizer.__dict__[name] = value
