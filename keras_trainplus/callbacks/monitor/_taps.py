"""`ActivationTaps`: per-layer output statistics and the loss, recorded
in the forward pass of the train step on record steps (`_buffers`).

A forward pass cannot read ``optimizer.iterations`` on JAX, so the taps
read a counter (hidden model state) that the recorder's post-update
function sets to ``optimizer.iterations`` after every step: the forward
passes of update ``i`` (all micro-batches under gradient accumulation)
see ``i``. Each watched layer's `call` is wrapped on the instance; the
wrapper records only inside the train step (`evaluate` and `predict` run
the stock computation). Per record and layer it keeps the element count,
the sum, the sum of squared deviations from the batch mean and
``sum**2 / count`` (so per-replica parts combine exactly, Chan et al.'s
parallel variance), and per unit (the last axis: a Dense unit, a
convolution channel over all positions) the count of non-zero values.
"""

import threading
import warnings

from keras import ops

from keras_trainplus import _internals as internals
from keras_trainplus.callbacks.monitor._buffers import buffer
from keras_trainplus.callbacks.monitor._buffers import due_and_slot
from keras_trainplus.callbacks.monitor._buffers import write_rows


def _first_float(outputs):
    stack = [outputs]
    while stack:
        x = stack.pop(0)
        if isinstance(x, (list, tuple)):
            stack[:0] = list(x)
        elif isinstance(x, dict):
            stack[:0] = list(x.values())
        elif hasattr(x, "dtype") and "float" in str(x.dtype):
            return x
    return None


class ActivationTaps:
    """The forward-side records of one `fit`.

    Args:
        model: the model.
        watched: `WatchedLayers`.
        every_n_steps: int.
        capacity: slots per buffer.
        activations: bool, whether to tap the layer outputs (the loss is
            always recorded).
        switch: the `RecordingSwitch` (its `mode` is read when traced).
    """

    def __init__(
        self, model, watched, every_n_steps, capacity, activations, switch
    ):
        self.model = model
        self.switch = switch
        self.watched = watched
        self.n = every_n_steps
        self.capacity = capacity
        self.counter = buffer(
            model, (), "int32", "monitor_counter", "only_first_replica"
        )
        rows = capacity + 1  # + the scratch row
        self.steps = buffer(
            model, (rows,), "int32", "monitor_fsteps", "only_first_replica"
        )
        # One table: the loss, then per layer its 4 moments, then per layer
        # the non-zero count of each unit (see `columns`).
        self.moments, self.nonzero = [], []
        width = 1
        if activations:
            for layer in watched.layers:
                self.moments.append(width)
                width += 4
            for layer in watched.layers:
                units = internals.layers.output_units(layer)
                self.nonzero.append(None if units is None else (width, units))
                width += units or 0
        self.table = buffer(model, (rows, width), "float32", "monitor_acts")
        self._calls = {}
        self._loss_token = None
        self._local = threading.local()  # replica threads trace at once

    def _hidden(self):
        return [
            (self.model, self.counter),
            (self.model, self.steps),
            (self.model, self.table),
        ]

    # -- install --------------------------------------------------------------

    def install(self, iterations):
        self.counter.assign(iterations)
        for layer, variable in self._hidden():
            internals.layers.attach_hidden_state(layer, variable)
        for j, layer in enumerate(self.watched.layers[: len(self.moments)]):
            previous = internals.layers.instance_call(layer)
            self._calls[j] = previous
            internals.layers.set_layer_call(layer, self._tapped(j, layer.call))
        self._loss_token = internals.trainer.wrap_compute_loss(
            self.model, self._loss_wrapper
        )
        for layer, nz in zip(self.watched.layers, self.nonzero):
            if self.moments and nz is None:
                warnings.warn(
                    f"TrainingMonitor: the output shape of layer "
                    f"{layer.name!r} is unknown, so its dead fraction is "
                    "not recorded (build the model on an input shape).",
                    stacklevel=3,
                )

    def uninstall(self):
        if self._loss_token is not False:
            internals.trainer.unwrap_compute_loss(self.model, self._loss_token)
            self._loss_token = False
        for j, previous in self._calls.items():
            internals.layers.set_layer_call(self.watched.layers[j], previous)
        self._calls = {}
        for layer, variable in self._hidden():
            internals.layers.detach_hidden_state(layer, variable)

    def set_step(self, iterations):
        """In the step, after each update (see module doc)."""
        self.counter.assign(iterations)

    # -- in the step ----------------------------------------------------------

    def _tapped(self, j, call):
        def tapped_call(*args, **kwargs):
            outputs = call(*args, **kwargs)
            x = _first_float(outputs)
            if (
                x is not None
                and self.switch.mode != "off"
                and internals.trainer.in_train_step(self.model)
            ):
                # kept until the loss: one conditional for every layer
                self._pending().append((j, ops.stop_gradient(x)))
            return outputs

        return tapped_call

    def _pending(self):
        if not hasattr(self._local, "outputs"):
            self._local.outputs = []
        return self._local.outputs

    def _stats(self, j, x, dead):
        """The moments of layer `j`'s output `x` (and, with `dead`, the
        non-zero count of each unit)."""
        x = ops.cast(x, "float32")
        units = x.shape[-1] if len(x.shape) > 1 else 1
        flat = ops.reshape(x, (-1, units))
        count = ops.cast(ops.size(flat), "float32")
        total = ops.sum(flat)
        mean = total / count
        m2 = ops.sum(ops.square(flat - mean))
        out = [ops.stack([count, total, m2, total * mean])]
        if dead:
            out.append(ops.sum(ops.cast(ops.not_equal(flat, 0), "float32"), 0))
        return out

    def _loss_wrapper(self, previous):
        def compute_loss(*args, **kwargs):
            loss = previous(*args, **kwargs)
            if internals.trainer.in_train_step(self.model):
                self._record(loss)
            return loss

        return compute_loss

    def _record(self, loss):
        """In the step, after the forward pass: the loss and the watched
        outputs of this step, when it is a record step."""
        outputs, self._local.outputs = self._pending(), []
        if self.switch.mode == "off":
            return
        loss = ops.stop_gradient(loss)  # no gradient through the record
        step = self.counter.value
        due, slot = due_and_slot(step, self.n, self.capacity)
        if self.switch.mode == "always":
            due = True
        parts = [(self.steps, [], ()), (self.table, [0], (1,))]
        taps = []
        for j, x in outputs:
            units = x.shape[-1] if len(x.shape) > 1 else 1
            nonzero = self.nonzero[j]
            # (another call of the layer may have another shape)
            dead = nonzero is not None and nonzero[1] == units
            parts.append((self.table, [self.moments[j]], (4,)))
            if dead:
                parts.append((self.table, [nonzero[0]], (units,)))
            taps.append((j, x, dead))

        def compute():
            out = [step + 1, ops.reshape(loss, (1,))]
            for j, x, dead in taps:
                out += self._stats(j, x, dead)
            return out

        write_rows(due, slot, parts, compute)
