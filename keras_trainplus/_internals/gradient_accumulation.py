"""Optimizer internals for a gradient accumulation whose factor changes
during training (`knobs/gradient_accumulation.py`).

Keras's own accumulation (`gradient_accumulation_steps`) is a constructor
argument read when the step is traced. Here the optimizer's
`_backend_apply_gradients` (which `apply` calls once per micro-batch,
before it counts the micro-batch in `_iterations`) is routed through a
program that accumulates, runs the stock update only on update
micro-batches, and takes the micro-batch back out of `_iterations`
otherwise, so `optimizer.iterations` counts real updates.
"""

import keras
from keras import ops

from keras_trainplus._internals import method_layers
from keras_trainplus._internals.version import hook
from keras_trainplus._internals.version import require


@hook("3.15")
def set_apply_program(optimizer, program):
    """Routes ``_backend_apply_gradients(grads, variables)`` through
    ``program(stock, grads, variables)``; `stock(grads, variables)` is the
    optimizer's own (clipping, weight decay, the update, EMA). None
    removes it."""
    factory = None
    if program is not None:

        def factory(stock):
            def backend_apply_gradients(grads, trainable_variables):
                return program(stock, list(grads), list(trainable_variables))

            return backend_apply_gradients

    method_layers.set_method_layer(
        optimizer, "_backend_apply_gradients", "accumulation", factory, rank=0
    )


@hook("3.15")
def uncount(optimizer, skipped):
    """Subtracts `skipped` (0 or 1, a tensor) from the micro-batch count
    that `apply` increments after every call: a micro-batch that only
    accumulated is not an update."""
    require(optimizer, "_iterations", "count real updates")
    counter = optimizer._iterations
    counter.assign(counter - ops.cast(skipped, counter.dtype))


@hook("3.15")
def variable_index(optimizer, variable):
    """The index of `variable` in the list the optimizer was built on."""
    require(optimizer, "_get_variable_index", "accumulate gradients")
    return optimizer._get_variable_index(variable)


@hook("3.15")
def built_variables(optimizer):
    """The trainable variables the optimizer was built on, in order."""
    require(optimizer, "_trainable_variables", "accumulate gradients")
    return list(optimizer._trainable_variables)


@hook("3.15")
def conditional_update_allowed():
    """False where the update cannot sit inside a conditional: on JAX (the
    train step is stateless) and inside a `tf.distribute` strategy, whose
    update synchronizes the replicas (`merge_call`), which TensorFlow does
    not allow inside a `tf.cond`. There the update runs on every
    micro-batch and is kept only on update micro-batches."""
    backend = keras.backend.backend()
    if backend == "jax":
        return False
    if backend != "tensorflow":
        return True
    import tensorflow as tf

    return not tf.distribute.has_strategy()


@hook("3.15")
def assign_per_replica(optimizer, variables, values):
    """Assigns `values` to `variables`; under `tf.distribute` (replica
    context) each replica's copy takes its own replica's value, as Keras
    does for its own gradient accumulators."""
    if keras.backend.backend() != "tensorflow":
        for variable, value in zip(variables, values):
            variable.assign(value)
        return
    import tensorflow as tf

    require(optimizer, "_distribution_strategy", "accumulate per replica")
    targets = [
        v.value if isinstance(v, keras.Variable) else v for v in variables
    ]

    def update(distribution, values, targets):
        for value, target in zip(values, targets):
            distribution.extended.update(
                target,
                lambda var, x: var.assign(x),
                args=(value,),
                group=False,
            )

    tf.__internal__.distribute.interim.maybe_merge_call(
        update, optimizer._distribution_strategy, values, targets
    )


@hook("3.15")
def has_apply_program(optimizer):
    """Whether an accumulation program is installed (`set_apply_program`)."""
    return "accumulation" in method_layers.method_layers(
        optimizer, "_backend_apply_gradients"
    )
