"""Optimizer internals: layers of instance methods and substituted
attributes.

* **Layers of instance methods**: every feature that changes how one of
  the optimizer's methods runs installs a named layer over it
  (`set_method_layer`), so features compose in a fixed order and each
  removes only its own.
* **Attributes substituted by per-step tensors** while one call runs
  (`substituted`), safe under MirroredStrategy's replica threads.
* **The per-variable update on torch** (`per_variable_updates`).
"""

import contextlib
import threading

import keras

from keras_trainplus._internals.optimizer import _STATE
from keras_trainplus._internals.optimizer import caches
from keras_trainplus._internals.optimizer import forget_if_idle
from keras_trainplus._internals.optimizer import state
from keras_trainplus._internals.version import hook
from keras_trainplus._internals.version import require

_SUBSTITUTION_LOCK = threading.Lock()


@contextlib.contextmanager
def substituted(optimizer, values):
    """Temporarily replaces optimizer attributes by per-step tensors.

    Under MirroredStrategy replica threads can be inside at the same time
    (one paused in a `merge_call`): the originals are saved by the first to
    enter and restored by the last to leave; threads enter with equal
    values (all come from the same step and run the same code). A nested
    substitution sets its values and leaves them to the outer one's exit.
    """
    state_ = state(optimizer)
    with _SUBSTITUTION_LOCK:
        if state_.setdefault("depth", 0) == 0:
            state_["saved"] = {n: optimizer.__dict__[n] for n in values}
        else:
            for n in values:
                state_["saved"].setdefault(n, optimizer.__dict__[n])
        state_["depth"] += 1
        optimizer.__dict__.update(values)
    try:
        yield
    finally:
        with _SUBSTITUTION_LOCK:
            state_["depth"] -= 1
            if state_["depth"] == 0:
                optimizer.__dict__.update(state_.pop("saved"))


def unsubstituted(optimizer, name):
    """The attribute `name` as it is outside every substitution (another
    replica thread may be inside one)."""
    state_ = state(optimizer)
    with _SUBSTITUTION_LOCK:
        if state_.get("depth") and name in state_.get("saved", {}):
            return state_["saved"][name]
        return optimizer.__dict__[name]


@hook("3.15")
def set_method_layer(optimizer, method, name, factory, rank=0):
    """Installs ``factory(inner) -> function`` as the layer `name` of the
    optimizer's `method`, on this instance. Layers compose by `rank` (the
    lowest runs innermost, directly over the class's method; a factory may
    ignore `inner` and replace it). ``factory=None`` removes the layer; with
    no layer left the method is the class's again."""
    require(optimizer, method, f"change `{method}`")
    all_layers = state(optimizer).setdefault("layers", {})
    layers = all_layers.setdefault(method, {})
    if factory is None:
        layers.pop(name, None)
    else:
        layers[name] = (rank, factory)
    optimizer.__dict__.pop(method, None)
    if not layers:
        all_layers.pop(method, None)
        forget_if_idle(optimizer)
        return
    stock = getattr(type(optimizer), method)

    def fn(*args, **kwargs):
        return stock(optimizer, *args, **kwargs)

    for _, make in sorted(layers.values(), key=lambda layer: layer[0]):
        fn = make(fn)
    optimizer.__dict__[method] = fn


def method_layers(optimizer, method):
    """The names of the layers installed over `method`."""
    programs = optimizer.__dict__.get(_STATE) or {}  # (not created here)
    return set(programs.get("layers", {}).get(method, {}))


@hook("3.15")
def per_variable_updates(optimizer, user, needed):
    """On torch, Keras's fused optimizers (`_parallel_update_step`) never
    call `update_step`; a feature that changes `update_step` (`user`)
    needs the per-variable path of the optimizer's backend-independent
    class (Nadam's included). Elsewhere the update always runs per
    variable."""
    if keras.backend.backend() != "torch":
        return
    users = state(optimizer).setdefault("per_variable", set())
    if needed:
        users.add(user)
    else:
        users.discard(user)
    factory = _per_variable_factory(optimizer) if users else None
    set_method_layer(
        optimizer, "_backend_update_step", "per_variable", factory, rank=0
    )


def _per_variable_factory(optimizer):
    import torch

    generic = next(
        cls.__dict__["_backend_update_step"]
        for cls in type(optimizer).__mro__
        if "_backend_update_step" in cls.__dict__
        and not cls.__module__.startswith("keras.src.backend.torch")
    )
    cache = caches(optimizer)

    def factory(inner):
        def backend_update_step(grads, trainable_variables, learning_rate):
            with torch.no_grad(), cache.eager_step():
                generic(optimizer, grads, trainable_variables, learning_rate)

        return backend_update_step

    return factory
