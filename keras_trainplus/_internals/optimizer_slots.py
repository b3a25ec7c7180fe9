"""Optimizer internals: the optimizer variables of each trainable variable
(its slots) and those shared by all (Nadam's running product)."""

import collections.abc

import keras

from keras_trainplus._internals import optimizer as optimizer_core
from keras_trainplus._internals.version import hook
from keras_trainplus._internals.version import require


@hook("3.15")
def slots_by_index(optimizer):
    """The optimizer variables of each trainable variable (momentum,
    velocities, ...), by the index `update_step` uses: every list attribute
    of the optimizer aligned with the variables it was built on (Keras's
    optimizers keep one slot list per kind); not the gradient accumulators
    or the EMA."""
    skip = {"_accumulated_gradients", "_model_variables_moving_average"}
    out = [[] for _ in range(len(optimizer._trainable_variables))]
    for name, items in _aligned_lists(optimizer).items():
        if name in skip:
            continue
        for i, slot in enumerate(items):
            if slot is not None:
                out[i].append(slot)
    return out


def _aligned_lists(optimizer):
    """``{attribute: list}`` of the optimizer's lists of variables aligned
    with the variables it was built on."""
    require(optimizer, "_trainable_variables", "find optimizer slots")
    built = list(optimizer._trainable_variables)
    count = len(built)
    model_ids = {id(v) for v in built}
    out = {}
    for name, value in vars(optimizer).items():
        if name in ("_trainable_variables", "_variables") or count == 0:
            continue
        if isinstance(value, (str, bytes)):
            continue
        if not isinstance(value, collections.abc.Sequence):
            continue
        if len(value) != count:
            continue
        items = list(value)
        if not all(x is None or isinstance(x, keras.Variable) for x in items):
            continue
        if any(id(x) in model_ids for x in items if x is not None):
            continue
        out[name] = items
    return out


@hook("3.15")
def shared_state(optimizer):
    """Optimizer variables of no single variable and not the step or the
    learning rate (Nadam's running product)."""
    lists = _aligned_lists(optimizer).values()
    per_variable = {id(x) for items in lists for x in items}
    skip = per_variable | {id(optimizer.iterations)}
    skip.add(id(getattr(optimizer, "_learning_rate", None)))
    skip |= {id(v) for v in optimizer_core.hidden_optimizer_state(optimizer)}
    return [v for v in optimizer.variables if id(v) not in skip]
