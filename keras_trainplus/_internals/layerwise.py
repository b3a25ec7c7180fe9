"""Optimizer internals: a learning-rate multiplier per variable (layer-wise
learning rates) and freezing at multiplier 0.

Installed as layers over the optimizer's methods
(`optimizer.set_method_layer`):

* ``update_step(grad, var, lr)`` runs with ``lr * m`` for a variable with
  multiplier ``m``: the update of every Keras optimizer is then exactly
  the update at that learning rate (Adam's bias correction keeps reading
  the global ``iterations``). On torch Keras's fused update
  (`_parallel_update_step`) takes one learning rate for a list of
  variables: it runs once per group of variables with the same
  multiplier, at ``lr * m`` (state shared by all variables, Nadam's
  running product, advances once per update).
* ``_apply_weight_decay`` decays those variables with ``weight_decay * m``
  (the decoupled decay is ``lr * wd``, so it becomes ``lr * m * wd``).
* Freezing (``m == 0``): the update and the decay of the variable are
  skipped in-graph: inside a conditional on TF (one device) and torch; on
  JAX and under `tf.distribute` (where the update synchronizes replicas)
  they run and the variable and its optimizer slots are put back by
  selection, bit for bit. Its gradient is zeroed at the start of the
  apply step, so it neither enters a global-norm clip nor an accumulator.
"""

import collections.abc

import keras
from keras import ops

from keras_trainplus._internals import gradient_accumulation as accumulation
from keras_trainplus._internals import method_layers
from keras_trainplus._internals import optimizer as optimizer_core
from keras_trainplus._internals import optimizer_slots
from keras_trainplus._internals.version import hook
from keras_trainplus._internals.version import require


@hook("3.15")
def set_lr_multiplier(optimizer, key, variables, program, freezable=True):
    """Multiplies the learning rate of `variables` by ``program(step)``.

    `key` identifies the caller (several multipliers of one variable
    multiply); `step` is ``optimizer.iterations``. With `freezable`, a
    value of 0 freezes the variables and their slots (see module doc);
    without, values must stay positive. ``program=None`` removes it.
    """
    require(optimizer, "_get_variable_index", "scale a layer's learning rate")
    entries = optimizer_core.state(optimizer).setdefault("multipliers", {})
    if program is None:
        entries.pop(key, None)
    else:
        entries[key] = (list(variables), program, bool(freezable))
    layer = method_layers.set_method_layer
    on = bool(entries)
    freeze = any(entry[2] for entry in entries.values())
    layer(
        optimizer,
        "update_step",
        "lr_multiplier",
        _update_step_layer(optimizer) if on else None,
        rank=1,
    )
    layer(
        optimizer,
        "_apply_weight_decay",
        "lr_multiplier",
        _weight_decay_layer(optimizer) if on else None,
        rank=0,
    )
    layer(
        optimizer,
        "_backend_apply_gradients",
        "frozen_gradients",
        _frozen_gradients_layer(optimizer) if freeze else None,
        rank=1,
    )
    if keras.backend.backend() == "torch":
        layer(
            optimizer,
            "_backend_update_step",
            "lr_multiplier",
            _torch_groups_layer(optimizer) if on else None,
            rank=1,
        )
    if not entries:
        optimizer_core.state(optimizer).pop("multipliers", None)
        optimizer_core.forget_if_idle(optimizer)


def _as_factor(value):
    """A multiplier's value: a Python number stays one (a constant costs
    no op), anything else a float32 tensor."""
    if isinstance(value, (int, float)):
        return float(value)
    return ops.cast(value, "float32")


def _host_positive(factor):
    if isinstance(factor, float):
        return factor > 0
    return bool(ops.all(factor > 0))


def _index(optimizer, variable):
    try:
        return optimizer._get_variable_index(variable)
    except (KeyError, ValueError):
        return None


def _factors(optimizer):
    """``{variable index: (factor tensor, freezable)}`` for this step,
    computed once per traced graph (one product per set of multipliers)."""
    entries = optimizer_core.state(optimizer).get("multipliers") or {}

    def compute():
        step = optimizer_core.step(optimizer)
        values = {
            key: _as_factor(program(step))
            for key, (_, program, _) in entries.items()
        }
        keys_of = collections.defaultdict(list)
        for key, (variables, _, _) in entries.items():
            for variable in variables:
                index = _index(optimizer, variable)
                if index is not None and key not in keys_of[index]:
                    keys_of[index].append(key)
        products = {}
        table = {}
        for index, keys in keys_of.items():
            combo = tuple(id(k) for k in keys)
            if combo not in products:
                factor = values[keys[0]]
                for key in keys[1:]:
                    factor = factor * values[key]
                freezable = any(entries[k][2] for k in keys)
                products[combo] = (factor, freezable, combo)
            table[index] = products[combo]
        return table

    return optimizer_core.caches(optimizer).get("multipliers", compute)


def _torch_groups_layer(optimizer):
    """torch: the update of each group of variables with one multiplier at
    ``lr * m`` (frozen groups skipped), unless another feature needs the
    per-variable path (then `update_step` scales)."""
    cache = optimizer_core.caches(optimizer)
    state = optimizer_core.state(optimizer)

    def factory(inner):
        def backend_update_step(grads, variables, learning_rate):
            if state.get("per_variable"):
                return inner(grads, variables, learning_rate)
            with cache.eager_step():
                table = _factors(optimizer)
                groups = {}
                for grad, variable in zip(grads, variables):
                    entry = table.get(_index(optimizer, variable))
                    key = None if entry is None else entry[2]
                    group = groups.setdefault(key, (entry, [], []))
                    group[1].append(grad)
                    group[2].append(variable)
                shared = optimizer_slots.shared_state(optimizer)
                before = [ops.copy(v.value) for v in shared]
                state["scaled"] = True
                try:
                    first = True
                    for entry, group_grads, group_vars in groups.values():
                        rate = learning_rate
                        if entry is not None:
                            if entry[1] and not _host_positive(entry[0]):
                                continue  # frozen
                            rate = ops.cast(learning_rate, "float32") * entry[0]
                        if not first:  # shared state advances once
                            for v, old in zip(shared, before):
                                v.assign(old)
                        first = False
                        inner(group_grads, group_vars, rate)
                finally:
                    state.pop("scaled", None)

        return backend_update_step

    return factory


def _update_step_layer(optimizer):
    def factory(inner):
        def update_step(gradient, variable, learning_rate):
            if optimizer_core.state(optimizer).get("scaled"):
                return inner(gradient, variable, learning_rate)
            index = _index(optimizer, variable)
            entry = _factors(optimizer).get(index)
            if entry is None:
                return inner(gradient, variable, learning_rate)
            factor, freezable, combo = entry
            # One product per multiplier and traced graph, not per variable.
            scaled = optimizer_core.caches(optimizer).get(
                ("scaled", combo, id(learning_rate)),
                lambda: ops.cast(learning_rate, "float32") * factor,
            )

            def run():
                inner(gradient, variable, scaled)

            if not freezable:
                return run()
            slots = optimizer_slots.slots_by_index(optimizer)[index]
            _unless_frozen(optimizer, factor, [variable, *slots], run, False)

        return update_step

    return factory


def _weight_decay_layer(optimizer):
    def factory(inner):
        def apply_weight_decay(variables):
            if optimizer.weight_decay is None:
                return inner(variables)
            table = _factors(optimizer)
            plain, groups = [], {}
            for variable in variables:
                entry = table.get(_index(optimizer, variable))
                if entry is None:
                    plain.append(variable)
                else:
                    groups.setdefault(entry[2], (entry, []))[1].append(variable)
            if plain:
                inner(plain)
            decay = _base_weight_decay(optimizer)
            for (factor, freezable, _), group in groups.values():

                def run(group=group, factor=factor):
                    scaled = ops.multiply(ops.cast(decay, "float32"), factor)
                    with method_layers.substituted(
                        optimizer, {"weight_decay": scaled}
                    ):
                        inner(group)

                if freezable:
                    _unless_frozen(optimizer, factor, group, run, True)
                else:
                    run()

        return apply_weight_decay

    return factory


def _base_weight_decay(optimizer):
    """The weight decay of this step before any multiplier: a scheduled
    one's value, else the attribute (not read through a substitution that
    another replica thread holds: that would multiply twice)."""
    state = optimizer_core.state(optimizer)
    program = (state.get("hyper") or {}).get("weight_decay")
    if program is not None:
        return optimizer_core.caches(optimizer).get(
            "weight_decay", lambda: program(optimizer_core.step(optimizer))
        )
    return method_layers.unsubstituted(optimizer, "weight_decay")


def _gradients_shared(optimizer):
    """Whether a frozen variable's gradient could reach other variables'
    updates: through a global-norm clip or a gradient accumulator (decided
    when the step is traced)."""
    state = optimizer_core.state(optimizer)
    programs = state.get("gradient") or {}
    layers = (state.get("layers") or {}).get("_backend_apply_gradients", {})
    return bool(
        getattr(optimizer, "global_clipnorm", None)
        or "clip" in programs
        or getattr(optimizer, "gradient_accumulation_steps", None)
        or "accumulation" in layers
    )


def _frozen_gradients_layer(optimizer):
    def factory(inner):
        def backend_apply_gradients(grads, trainable_variables):
            table = _factors(optimizer)
            frozen = []  # (position, index, factor) of freezable variables
            for i, variable in enumerate(trainable_variables):
                index = _index(optimizer, variable)
                if index in table and table[index][1]:
                    frozen.append((i, index, table[index][0]))
            if frozen and _gradients_shared(optimizer):
                grads = list(grads)
                for i, _, factor in frozen:
                    if grads[i] is not None:
                        grads[i] = _zero_unless(factor > 0, grads[i])
            if not frozen or not getattr(optimizer, "use_ema", False):
                return inner(grads, trainable_variables)
            # Keras's EMA averages and overwrites every variable: a frozen
            # one and its average are put back (the average pauses).
            averages = optimizer._model_variables_moving_average
            variables, factors = [], []
            for i, index, factor in frozen:
                variables += [trainable_variables[i], averages[index]]
                factors += [factor, factor]
            olds = [ops.copy(_read(v)) for v in variables]
            inner(grads, trainable_variables)
            values = [
                ops.where(f > 0, _read(v), old)
                for v, f, old in zip(variables, factors, olds)
            ]
            accumulation.assign_per_replica(optimizer, variables, values)

        return backend_apply_gradients

    return factory


def _zero_unless(active, gradient):
    """`gradient`, or zeros where not `active` (a sparse TF gradient keeps
    its indices, its values zeroed)."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        if isinstance(gradient, tf.IndexedSlices):
            values = gradient.values
            values = tf.where(active, values, tf.zeros_like(values))
            return tf.IndexedSlices(
                values, gradient.indices, gradient.dense_shape
            )
    return ops.where(active, gradient, ops.zeros_like(gradient))


def _unless_frozen(optimizer, factor, variables, run, replica_context):
    """Runs `run` (which updates `variables`) unless ``factor == 0``."""
    if keras.backend.backend() == "torch":  # eager: one host read a step
        active = optimizer_core.caches(optimizer).get(
            ("active", id(factor)), lambda: _host_positive(factor)
        )
        if active:
            run()
        return
    if accumulation.conditional_update_allowed():
        ops.cond(factor > 0, lambda: _none(run), lambda: None)
        return
    olds = [ops.copy(_read(v)) for v in variables]
    run()
    kept = [
        ops.where(factor > 0, _read(v), old) for v, old in zip(variables, olds)
    ]
    if replica_context:
        accumulation.assign_per_replica(optimizer, variables, kept)
    else:
        for variable, value in zip(variables, kept):
            optimizer.assign(variable, value)


def _none(run):
    run()
    return None


def _read(variable):
    if isinstance(variable, keras.Variable):
        return variable.value
    return ops.convert_to_tensor(variable)
