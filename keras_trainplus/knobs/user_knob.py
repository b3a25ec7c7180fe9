"""`UserKnob`: a `Knob` you created, scheduled by the driver and read by
your own code in the compiled step (``knob.read()``)."""

from keras_trainplus import _internals as internals
from keras_trainplus import _validation as v
from keras_trainplus.knobs.bound_knob import BoundKnob
from keras_trainplus.knobs.bound_knob import _jax
from keras_trainplus.knobs.bound_knob import is_bare_base
from keras_trainplus.schedules.constant import Constant


class UserKnob(BoundKnob):
    """A user `Knob` as a driver target.

    Per-epoch values are written into the knob's variable; a per-step
    schedule becomes the knob's in-graph program, so ``knob.read()`` in the
    compiled step returns ``schedule(optimizer.iterations - offset)``, in
    the knob's dtype. On JAX a knob that is neither a model nor an
    optimizer variable is carried as hidden optimizer state while installed
    (no `Knob.track` needed); a forward pass on JAX cannot see the
    optimizer's step, so there a knob read in a layer's `call` takes
    per-epoch values and constants (attach it to the layer).
    """

    def __init__(self, model, knob, log_key=None):
        super().__init__(model)
        self.knob = knob
        self.log_key = log_key or knob.variable.name
        self._original = float(knob)
        self._uses_base = False
        self._hidden = False

    def value_keys(self):
        return [
            (("knob", id(self.knob.variable)), f"the knob {self.log_key!r}")
        ]

    def check_value(self, target, value, argument):
        return v.target_value(self.knob, value, argument)

    def base(self):
        return float(self.knob)

    def set_base(self, value):
        self.knob.assign(float(value), model=self.model)

    def mirror(self, value):
        if not self._uses_base:
            self.knob.assign(float(value), model=self.model)

    def restore_original(self):
        self.knob.assign(self._original, model=self.model)

    def install(self, schedule, offset):
        self._uses_base = schedule.uses_base()
        if _jax() and not self._tracked():
            for opt in self.optimizers:
                internals.optimizer.attach_hidden_optimizer_state(
                    opt, self.knob.variable
                )
            self._hidden = True
        if is_bare_base(schedule):
            return
        if isinstance(schedule, Constant):  # a value, no program
            self.knob.assign(float(schedule.value), model=self.model)
            return
        optimizer, variable = self.optimizers[0], self.knob.variable

        def program():
            step = internals.optimizer.step(optimizer)
            return schedule.evaluate(step - offset, base=variable)

        self.knob.set_program(program)

    def uninstall(self):
        self.knob.set_program(None)
        if self._hidden:
            for opt in self.optimizers:
                internals.optimizer.detach_hidden_optimizer_state(
                    opt, self.knob.variable
                )
            self._hidden = False

    def _tracked(self):
        variables = list(self.model.variables)
        for opt in self.optimizers:
            variables += list(opt.variables)
        return any(x is self.knob.variable for x in variables)


def is_knob(target):
    from keras_trainplus.knobs.knob import Knob

    return isinstance(target, Knob)
