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

import contextlib
import threading

import keras
from keras import ops

from keras_trainplus._internals import optimizer as optimizer_core
from keras_trainplus._internals.version import hook
from keras_trainplus._internals.version import require


@hook("3.15")
def has_momentum_slots(optimizer):
    if isinstance(optimizer, keras.optimizers.SGD):
        return bool(optimizer.momentum)
    return True


_SUBSTITUTION_LOCK = threading.Lock()


@contextlib.contextmanager
def _substituted(optimizer, values):
    """Temporarily replaces optimizer attributes by per-step tensors.

    Under MirroredStrategy replica threads can be inside at the same time:
    the originals are saved by the first to enter and restored by the last
    to leave (the values are equal: all come from the same step).
    """
    state = optimizer_core.state(optimizer)
    with _SUBSTITUTION_LOCK:
        if state.setdefault("depth", 0) == 0:
            state["saved"] = {n: optimizer.__dict__[n] for n in values}
        state["depth"] += 1
        optimizer.__dict__.update(values)
    try:
        yield
    finally:
        with _SUBSTITUTION_LOCK:
            state["depth"] -= 1
            if state["depth"] == 0:
                optimizer.__dict__.update(state.pop("saved"))


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
    callables of ``optimizer.iterations``. Pass ``{}`` to remove.
    """
    state = optimizer_core.state(optimizer)
    for name in ("update_step", "_backend_update_step", "_apply_weight_decay"):
        optimizer.__dict__.pop(name, None)
    state["hyper"] = dict(programs)
    if not programs:
        optimizer_core.forget_if_idle(optimizer)
        return
    for name in programs:
        require(optimizer, name, f"schedule `{name}`")
    cache = optimizer_core.caches(optimizer)
    all_programs = dict(programs)

    def values():
        def compute():
            step = optimizer_core.step(optimizer)
            return {name: fn(step) for name, fn in all_programs.items()}

        return cache.get("hyper", compute)

    if "weight_decay" in programs:
        _substitute_weight_decay(optimizer, values)
        programs = {k: f for k, f in programs.items() if k != "weight_decay"}
    if not programs:
        return
    if keras.backend.backend() == "torch":
        _substitute_eagerly(optimizer, values, programs)
    else:
        _substitute_in_graph(optimizer, values, programs)


def _substitute_weight_decay(optimizer, values):
    original = type(optimizer)._apply_weight_decay

    def apply_weight_decay(variables):
        with _substituted(
            optimizer, {"weight_decay": values()["weight_decay"]}
        ):
            return original(optimizer, variables)

    optimizer.__dict__["_apply_weight_decay"] = apply_weight_decay


def _substitute_eagerly(optimizer, values, programs):
    """torch: compute once per step, then run the per-variable update (the
    fused torch path needs Python numbers for some arguments)."""
    import torch

    require(optimizer, "_backend_update_step", "schedule momentum")
    cls = type(optimizer)

    def backend_update_step(grads, trainable_variables, learning_rate):
        vals = {k: v for k, v in values().items() if k in programs}
        with torch.no_grad(), _substituted(optimizer, vals):
            for grad, var in zip(grads, trainable_variables):
                cls.update_step(optimizer, grad, var, learning_rate)

    optimizer.__dict__["_backend_update_step"] = backend_update_step


def _substitute_in_graph(optimizer, values, programs):
    cls = type(optimizer)
    is_sgd = isinstance(optimizer, keras.optimizers.SGD)
    original_backend_update_step = cls._backend_update_step

    def backend_update_step(grads, trainable_variables, learning_rate):
        # Build the values here, outside the per-variable colocation scopes
        # of `update_step`, next to the learning-rate program: the graph
        # optimizer can then merge their common work. `update_step` reads
        # them from the per-graph cache.
        values()
        return original_backend_update_step(
            optimizer, grads, trainable_variables, learning_rate
        )

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
            return cls.update_step(optimizer, gradient, variable, learning_rate)

    optimizer.__dict__["_backend_update_step"] = backend_update_step
    optimizer.__dict__["update_step"] = update_step


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
# clipping first, so the noise added after it keeps its standard deviation.
GRADIENT_PROGRAMS = ("clip", "noise")


@hook("3.15")
def set_gradient_program(optimizer, kind, program):
    """Runs ``program(grads, step)`` on the gradient the update uses.

    `kind` is ``"clip"`` or ``"noise"``; they run in that order. On TF the
    programs run on the all-reduced gradients (inside
    `_backend_update_step`, after `_all_reduce_sum_gradients`), so under
    `tf.distribute` they act on the aggregated gradient exactly as on one
    device, identically on every replica. Elsewhere (single process JAX and
    torch, where the gradient is already global) they replace
    `_clip_gradients`. The optimizer's own `clipnorm`/`global_clipnorm`/
    `clipvalue` are bypassed while a clip program is installed. Pass None
    to remove.
    """
    programs = optimizer_core.state(optimizer).setdefault("gradient", {})
    if program is None:
        programs.pop(kind, None)
    else:
        programs[kind] = program
    for name in ("_clip_gradients", "_all_reduce_sum_gradients"):
        optimizer.__dict__.pop(name, None)
    if not programs:
        optimizer_core.forget_if_idle(optimizer)
        return
    require(optimizer, "_clip_gradients", "schedule gradient programs")
    stock_clip = type(optimizer)._clip_gradients
    ordered = [programs[k] for k in GRADIENT_PROGRAMS if k in programs]
    clipped = "clip" in programs

    def run(grads):
        step = optimizer_core.step(optimizer)
        for program in ordered:
            grads = program(list(grads), step)
        return grads

    def own_clip(grads):
        return grads if clipped else stock_clip(optimizer, grads)

    if keras.backend.backend() == "tensorflow":
        require(
            optimizer,
            "_all_reduce_sum_gradients",
            "act on the aggregated gradient",
        )
        original = type(optimizer)._all_reduce_sum_gradients

        def all_reduce_then_run(grads_and_vars):
            reduced = list(original(optimizer, grads_and_vars))
            grads = run([g for g, _ in reduced])
            return [(g, v) for g, (_, v) in zip(grads, reduced)]

        optimizer.__dict__["_clip_gradients"] = own_clip
        optimizer.__dict__["_all_reduce_sum_gradients"] = all_reduce_then_run
        return

    def clip_gradients(grads):
        return run(own_clip(list(grads)))

    optimizer.__dict__["_clip_gradients"] = clip_gradients


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
