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

The buffers are hidden optimizer state (carried by the JAX train state,
absent from checkpoints).
"""

import keras
from keras import ops

from keras_trainplus import _internals as internals
from keras_trainplus.callbacks.monitor._buffers import assign_when
from keras_trainplus.callbacks.monitor._buffers import buffer
from keras_trainplus.callbacks.monitor._buffers import due_and_slot
from keras_trainplus.callbacks.monitor._buffers import write_rows

_NAME = "keras_trainplus_monitor"


def _square_sum(tensors):
    total = ops.zeros((), "float32")
    for x in tensors:
        total = total + ops.sum(ops.square(ops.cast(x, "float32")))
    return total


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
        n_layers, rows = len(watched.layers), capacity + 1  # + scratch
        self.steps = buffer(
            model, (rows,), "int32", "monitor_steps", "only_first_replica"
        )
        # per layer: squared gradient norm, finite flag, squared weight norm
        self.grads = buffer(model, (rows, n_layers, 3), "float32", "g")
        self.clipped = buffer(model, (rows, n_layers), "float32", "c")
        self.variables = [self.steps, self.grads, self.clipped]
        self.updates = None
        self.stash = []
        if updates:
            self.updates = buffer(model, (rows, n_layers), "float32", "u")
            self.pending = buffer(
                model, (), "int32", "monitor_pending", "only_first_replica"
            )
            self.variables += [self.updates, self.pending]
            if keras.backend.backend() != "jax":
                self.stash = [
                    buffer(model, w.shape, w.dtype, "monitor_stash")
                    for w in self._unique_weights()
                ]
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

    # -- install --------------------------------------------------------------

    def install(self, after_update, iterations):
        opt = self.optimizer
        if iterations % self.n == 0:  # the first recorded update's start
            for s, w in zip(self.stash, self._unique_weights()):
                s.assign(ops.copy(w.value))
        for variable in self.variables + self.stash:
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
        for variable in self.variables + self.stash:
            internals.optimizer.detach_hidden_optimizer_state(opt, variable)

    # -- in the step ------------------------------------------------------------

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
            if self.stash:  # the weights this update starts from
                for s, w in zip(self.stash, self._unique_weights()):
                    s.assign(w.value)
        self._before_clip = (list(grads), groups, due, slot)

        def compute():
            rows = []
            for group in groups:
                squares = _square_sum([grads[i] for i, _ in group])
                # non-finite if an element is (or the sum overflows float32)
                finite = ops.cast(ops.isfinite(squares), "float32")
                weights = _square_sum([w.value for _, w in group])
                rows.append(ops.stack([squares, finite, weights]))
            return [step + 1, ops.stack(rows)]

        write_rows(due, slot, [self.steps, self.grads], compute)
        if self.updates is not None:  # the post-update measures this one
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
                    ops.any(ops.not_equal(grads[i], before[i]))
                    for i, _ in group
                ]
                row.append(ops.any(ops.stack(changed)) if changed else False)
            return [ops.cast(ops.stack(row), "float32")]

        write_rows(due, slot, [self.clipped], compute)
        return grads

    def post_update(self, after_update):
        iterations = ops.cast(
            ops.convert_to_tensor(self.optimizer.iterations), "int32"
        )
        after_update(iterations)
        mode = self.switch.mode
        if self.updates is None or mode == "off":
            return
        pending = self.pending.value
        due = ops.logical_and(
            ops.greater(pending, 0), ops.equal(pending, iterations)
        )
        slot = ops.mod(ops.floor_divide(pending - 1, self.n), self.capacity)
        before = dict(zip(map(id, self._unique_weights()), self.stash))

        def old(w):
            value = internals.trainer.pre_update_value(w)
            return before[id(w)].value if value is None else value

        def compute():
            return [
                ops.stack(
                    [
                        _square_sum([w.value - old(w) for w in variables])
                        for variables in self.watched.variables
                    ]
                )
            ]

        if mode == "always":
            due = True
        write_rows(due, slot, [self.updates], compute)
        self.pending.assign(
            ops.zeros((), "int32") if due is True else ops.where(due, 0, pending)
        )
        if self.stash and mode == "conditional":
            # The weights the next update starts from, if it is recorded.
            weights = self._unique_weights()
            assign_when(
                ops.equal(ops.mod(iterations, self.n), 0),
                self.stash,
                lambda: [ops.copy(w.value) for w in weights],
            )
