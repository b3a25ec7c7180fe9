"""Ring buffers of records, written in the compiled step on record steps
only.

Update ``i`` (0-based) is recorded when ``i % every_n_steps == 0``, into
slot ``(i // every_n_steps) % capacity``; the host reads the buffers
before they can wrap (`_history`). Each buffer has one more row, a
scratch row: on JAX (where a conditional cannot assign) the step computes
the row in a ``lax.cond`` (zeros when not recording) and writes it in
place, into its slot or the scratch row, so steps in between copy nothing
but one zero row. A buffer is a non-trainable variable
that is per replica under `tf.distribute` (``synchronization="on_read"``):
a replica writes its own copy with no cross-replica call, so the write can
sit in a real conditional, and the host reads the replicas' mean (the
recorder writes identical values on every replica; the activation taps
write per-replica sums whose means combine exactly, see `_history`).
"""

import keras
from keras import ops

from keras_trainplus.knobs.knob import _strategy_scope


def buffer(model, shape, dtype, name, aggregation="mean"):
    """A zero-initialised record buffer, in `model`'s strategy scope."""
    with _strategy_scope(model):
        return keras.Variable(
            ops.zeros(shape, dtype),
            dtype=dtype,
            trainable=False,
            name=name,
            synchronization="on_read",
            aggregation=aggregation,
        )


def write_row(buffer_value, slot, row, offset=None):
    """`buffer_value` with `row` written at row `slot` (of the first axis),
    from `offset` (the start in the other axes, default 0): an in-place
    slice update where the buffer is donated."""
    row = ops.cast(ops.expand_dims(row, 0), buffer_value.dtype)
    offset = offset or [0] * (len(buffer_value.shape) - 1)
    return ops.slice_update(
        buffer_value, [ops.cast(slot, "int32"), *offset], row
    )


def assign_when(pred, variables, compute):
    """Assigns ``compute()`` (one tensor per variable) to `variables` when
    the scalar `pred` holds; otherwise does nothing. The computation runs
    only then: a real conditional on TF (``tf.cond``) and torch (a Python
    branch), ``jax.lax.cond`` on JAX (whose untaken branch keeps the
    values). `pred` ``True`` (Python) assigns with no conditional."""
    backend = keras.backend.backend()
    if pred is True or backend == "torch":
        if pred is True or bool(pred):
            for variable, value in zip(variables, compute()):
                variable.assign(value)
        return
    if backend == "jax":
        import jax

        values = jax.lax.cond(
            pred, compute, lambda: [ops.convert_to_tensor(v) for v in variables]
        )
        for variable, value in zip(variables, values):
            variable.assign(value)
        return
    import tensorflow as tf

    def write():
        ops_ = [v.assign(x) for v, x in zip(variables, compute())]
        with tf.control_dependencies(ops_):
            return tf.constant(True)

    tf.cond(pred, write, lambda: tf.constant(False))


def write_rows(pred, slot, parts, compute):
    """When `pred` holds, writes ``compute()`` into row `slot`: one value
    per part ``(buffer, offset, shape)`` (the part of a row at `offset`, of
    `shape`; see module doc). A buffer may take several parts."""
    if pred is True or keras.backend.backend() != "jax":

        def assign():
            values = {}
            for (b, offset, _), row in zip(parts, compute()):
                current = values.get(id(b), b.value)
                values[id(b)] = write_row(current, slot, row, offset)
            return [values[id(b)] for b in _buffers(parts)]

        assign_when(pred, _buffers(parts), assign)
        return
    import jax

    def rows():
        return [
            ops.cast(row, b.dtype) + ops.zeros(shape, b.dtype)
            for (b, _, shape), row in zip(parts, compute())
        ]

    def zeros():
        return [ops.zeros(shape, b.dtype) for b, _, shape in parts]

    values = jax.lax.cond(pred, rows, zeros)
    where = ops.where(pred, slot, parts[0][0].shape[0] - 1)
    current = {}
    for (b, offset, _), row in zip(parts, values):
        current[id(b)] = write_row(current.get(id(b), b.value), where, row,
                                   offset)  # fmt: skip
    for b in _buffers(parts):
        b.assign(current[id(b)])


def _buffers(parts):
    out = []
    for b, _, _ in parts:
        if all(b is not x for x in out):
            out.append(b)
    return out


def due_and_slot(step, every_n_steps, capacity):
    """Whether update `step` is recorded, and its slot."""
    step = ops.cast(step, "int32")
    due = ops.equal(ops.mod(step, every_n_steps), 0)
    slot = ops.mod(ops.floor_divide(step, every_n_steps), capacity)
    return due, slot
