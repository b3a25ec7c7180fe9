"""`GradientRecorder`: per-layer gradient, weight and update norms,
recorded in the compiled step on record steps (`_buffers`).

* a ``"record"`` gradient program (`_internals.optimizer_update`) sees the
  gradient the update uses (after the cross-replica sum, before any
  clipping) and the weights before the update: squared gradient norm, a
  finite flag and squared weight norm per layer;
* a ``"record_clipped"`` program marks the layers whose gradient a clip
  changed;
* a post-update function (`_internals.trainer.set_post_update`) measures
  the squared norm of each layer's weight change: against the weights the
  step started from on JAX, against a copy taken on record steps
  elsewhere (TF and torch update in place).

The records are one table per record row (per layer: squared gradient
norm, finite flag, squared weight norm, clipped flag, squared weight
change) and the copy is one flat vector: few variables, since each one a
train function captures costs time at every call. They are hidden
optimizer state (carried by the JAX train state, absent from
checkpoints).
"""

import keras
import numpy as np
from keras import ops

from keras_trainplus import _internals as internals
from keras_trainplus.callbacks.monitor._buffers import assign_when
from keras_trainplus.callbacks.monitor._buffers import buffer
from keras_trainplus.callbacks.monitor._buffers import due_and_slot
from keras_trainplus.callbacks.monitor._buffers import write_rows

_NAME = "keras_trainplus_monitor"


def _rows(g):
    """A gradient as the update applies it: TF's `IndexedSlices` (the
    gradient of an embedding) with the rows of repeated indices summed."""
    if not (hasattr(g, "indices") and hasattr(g, "dense_shape")):
        return g
    import tensorflow as tf

    unique, index = tf.unique(g.indices)
    return tf.math.unsorted_segment_sum(g.values, index, tf.size(unique))


def _square_sum(tensors):
    total = ops.zeros((), "float32")
    for x in tensors:
        total = total + ops.sum(ops.square(ops.cast(x, "float32")))
    return total


# The columns of the table, per layer.
GRAD, FINITE, WEIGHT, CLIPPED, UPDATE = range(5)


class GradientRecorder:
    """The optimizer-side records of one `fit`.

    Args:
        model: the model.
        watched: `WatchedLayers`.
        every_n_steps: int.
        capacity: slots per buffer.
        updates: bool, whether to measure the weight change.
        switch: the `RecordingSwitch` (its `mode` is read when traced).
    """

    def __init__(
        self, model, watched, every_n_steps, capacity, updates, switch
    ):
        self.model = model
        self.switch = switch
        self.watched = watched
        self.n = every_n_steps
        self.capacity = capacity
        self.optimizer = internals.optimizer.optimizers_of(model.optimizer)[0]
        self.layers, rows = len(watched.layers), capacity + 1  # + scratch
        self.steps = buffer(
            model, (rows,), "int32", "monitor_steps", "only_first_replica"
        )
        self.table = buffer(model, (rows, self.layers, 5), "float32", "g")
        self.variables = [self.steps, self.table]
        self.updates = updates
        self.weights = self._unique_weights()
        self.stash = None
        if updates:
            self.pending = buffer(
                model, (), "int32", "monitor_pending", "only_first_replica"
            )
            self.variables.append(self.pending)
            if keras.backend.backend() != "jax":
                size = sum(int(np.prod(w.shape)) for w in self.weights)
                self.stash = buffer(model, (size,), "float32", "stash")
                self.variables.append(self.stash)
        self.clip_seen = False
        self._before_clip = None

    def _unique_weights(self):
        out, seen = [], set()
        for variables in self.watched.variables:
            for w in variables:
                if id(w) not in seen:
                    seen.add(id(w))
                    out.append(w)
        return out

    def _flat(self, values):
        parts = [ops.reshape(ops.cast(v, "float32"), (-1,)) for v in values]
        return ops.concatenate(parts) if parts else ops.zeros((0,))

    def _part(self, column, width=1):
        return (self.table, [0, column], (self.layers, width))

    # -- install --------------------------------------------------------------

    def install(self, after_update, iterations):
        opt = self.optimizer
        if self.stash is not None and iterations % self.n == 0:
            self.stash.assign(self._flat([w.value for w in self.weights]))
        for variable in self.variables:
            internals.optimizer.attach_hidden_optimizer_state(opt, variable)
        update = internals.optimizer_update.set_gradient_program
        update(opt, "record", self.record)
        update(opt, "record_clipped", self.record_clipped)
        internals.trainer.set_post_update(
            self.model, _NAME, lambda: self.post_update(after_update)
        )

    def uninstall(self):
        opt = self.optimizer
        internals.trainer.set_post_update(self.model, _NAME, None)
        update = internals.optimizer_update.set_gradient_program
        update(opt, "record", None)
        update(opt, "record_clipped", None)
        for variable in self.variables:
            internals.optimizer.detach_hidden_optimizer_state(opt, variable)

    # -- in the step ----------------------------------------------------------

    def record(self, grads, step):
        mode = self.switch.mode
        self._before_clip = None
        if mode == "off":
            return grads
        seen = internals.optimizer_update.gradient_variables(self.optimizer)
        groups = self.watched.groups(seen)
        due, slot = due_and_slot(step, self.n, self.capacity)
        if mode == "always":
            due = True
            if self.stash is not None:  # the weights this update starts from
                self.stash.assign(self._flat([w.value for w in self.weights]))
        self._before_clip = (list(grads), groups, due, slot)

        def compute():
            rows = []
            for group in groups:
                squares = _square_sum([_rows(grads[i]) for i, _ in group])
                # non-finite if an element is (or the sum overflows float32)
                finite = ops.cast(ops.isfinite(squares), "float32")
                weights = _square_sum([w.value for _, w in group])
                rows.append(ops.stack([squares, finite, weights]))
            return [step + 1, ops.stack(rows)]

        parts = [(self.steps, [], ()), self._part(GRAD, 3)]
        write_rows(due, slot, parts, compute)
        if self.updates:  # the post-update measures this one
            step_id = ops.cast(step + 1, "int32")
            if due is not True:
                step_id = ops.where(due, step_id, self.pending.value)
            self.pending.assign(step_id)
        return grads

    def record_clipped(self, grads, step):
        if self._before_clip is None:
            return grads
        before, groups, due, slot = self._before_clip
        self._before_clip = None
        if all(a is b for a, b in zip(grads, before)):
            return grads  # no clip ran (traced: decided once per trace)
        self.clip_seen = True

        def compute():
            row = []
            for group in groups:
                changed = [
                    ops.any(ops.not_equal(_rows(grads[i]), _rows(before[i])))
                    for i, _ in group
                ]
                row.append(ops.any(ops.stack(changed)) if changed else False)
            return [ops.reshape(ops.cast(ops.stack(row), "float32"), (-1, 1))]

        write_rows(due, slot, [self._part(CLIPPED)], compute)
        return grads

    def post_update(self, after_update):
        iterations = ops.cast(
            ops.convert_to_tensor(self.optimizer.iterations), "int32"
        )
        after_update(iterations)
        mode = self.switch.mode
        if not self.updates or mode == "off":
            return
        pending = self.pending.value
        due = ops.logical_and(
            ops.greater(pending, 0), ops.equal(pending, iterations)
        )
        if mode == "always":
            due = True
        slot = ops.mod(ops.floor_divide(pending - 1, self.n), self.capacity)
        write_rows(due, slot, [self._part(UPDATE)], self._changes)
        self.pending.assign(
            ops.zeros((), "int32")
            if due is True
            else ops.where(due, 0, pending)
        )
        if self.stash is not None and mode == "conditional":
            # The weights the next update starts from, if it is recorded.
            assign_when(
                ops.equal(ops.mod(iterations, self.n), 0),
                [self.stash],
                lambda: [self._flat([w.value for w in self.weights])],
            )

    def _changes(self):
        """Per layer, the squared norm of the weight change."""
        squares, start = {}, 0
        for w in self.weights:
            size = int(np.prod(w.shape))
            old = internals.trainer.pre_update_value(w)
            if old is None:
                old = ops.reshape(
                    ops.slice(self.stash.value, [start], [size]), w.shape
                )
            start += size
            delta = ops.cast(w.value, "float32") - ops.cast(old, "float32")
            squares[id(w)] = ops.sum(ops.square(delta))
        row = [
            sum((squares[id(w)] for w in variables), ops.zeros(()))
            for variables in self.watched.variables
        ]
        return [ops.reshape(ops.stack(row), (-1, 1))]
