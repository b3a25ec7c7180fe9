"""`RecordingSwitch`: steps that record nothing run a train function
without the monitor's work.

The host knows which update an execution block starts at (it counts the
blocks, and reads ``optimizer.iterations`` once per epoch), so it knows
whether a block holds a record step. The monitor's parts read the switch's
`mode` while a train function is traced:

* ``"off"``: nothing is recorded (the step is stock but for one counter);
* ``"always"``: every step of the function records (``steps_per_execution
  = 1``, a block that is a record step): no conditional;
* ``"conditional"``: each step checks its update index in-graph.

Two train functions are built from Keras's `make_train_function` and one
of them runs each block (a dispatcher in ``model.train_function``). If
another callback rebuilds the train function (installing its own
programs), the pair is built again from the new one. Where the host cannot
follow the updates (an accumulation factor scheduled per epoch), one
``"conditional"`` function runs every block.
"""

import contextlib

from keras_trainplus import _internals as internals


class RecordingSwitch:
    """Which train function runs the next execution block (module doc).

    Args:
        model: the model.
        every_n_steps: int.
        steps_per_execution: int.
        accumulation: micro-batches per update (Keras's own
            accumulation), or None if the host cannot follow the updates.
        steps: batches per epoch, or None.
    """

    def __init__(self, model, every_n_steps, steps_per_execution, accumulation,
                 steps=None):  # fmt: skip
        self.model = model
        self.n = every_n_steps
        self.spe = steps_per_execution
        self.k = accumulation
        self.steps = steps
        self.mode = "conditional"  # read while a function is traced
        self.recording = "always" if self.spe == 1 else "conditional"
        self._dispatcher = None
        self._next = "conditional"
        self._update = self._micro = 0

    @property
    def follows(self):
        return self.k is not None

    def sync(self, optimizer):
        """Reads where the optimizer is (once per epoch)."""
        internals.trainer.sync_jax_state(self.model)
        if self.follows:
            micro = internals.optimizer.micro_iterations(optimizer)
            self._update, self._micro = divmod(micro, self.k)

    def before_block(self, batch):
        """Chooses the function of the block starting at `batch`."""
        if not self.follows:
            return
        size = self.spe
        if self.steps is not None:
            size = max(1, min(self.spe, int(self.steps) - batch))
        done = (self._micro + size) // self.k  # updates completed
        first = -(-self._update // self.n) * self.n  # next recorded update
        self._next = self.recording if first < self._update + done else "off"
        self._update += done
        self._micro = (self._micro + size) % self.k
        self._install()

    def _install(self):
        model = self.model
        current = internals.fit_loop.unguarded(model.train_function)
        if current is self._dispatcher and self._dispatcher is not None:
            return
        # A new train function (untraced): build the pair from the train
        # step it runs, each from its own step function (JAX caches traces
        # per function) that sets the mode while it is traced.
        saved = internals.trainer.instance_train_step(model)
        step = model.train_step
        functions = {}
        for mode in (self.recording, "off"):
            internals.trainer.set_train_step(model, self._variant(step, mode))
            internals.trainer.rebuild_train_function(model)
            functions[mode] = internals.fit_loop.unguarded(model.train_function)
        internals.trainer.set_train_step(model, saved)

        def dispatch(*args, **kwargs):
            mode = self._next
            with self._tracing(mode):  # torch reads it at every call
                return functions[mode](*args, **kwargs)

        self._dispatcher = dispatch
        model.train_function = dispatch

    def _variant(self, step, mode):
        def train_step(*args, **kwargs):
            with self._tracing(mode):
                return step(*args, **kwargs)

        return train_step

    @contextlib.contextmanager
    def _tracing(self, mode):
        previous, self.mode = self.mode, mode
        try:
            yield
        finally:
            self.mode = previous
