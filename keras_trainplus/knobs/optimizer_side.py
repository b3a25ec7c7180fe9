"""`OptimizerSideKnob`: the shared logic of values the optimizer's update
step reads (hyperparameters, the clip threshold)."""

from keras_trainplus import _internals as internals
from keras_trainplus.knobs.bound_knob import BoundKnob
from keras_trainplus.knobs.bound_knob import _jax
from keras_trainplus.knobs.knob import Knob


class OptimizerSideKnob(BoundKnob):
    """Shared logic of optimizer-side targets with a base knob.

    On TF and torch the knob is a plain variable read by the compiled step.
    On JAX only optimizer (and model) variables are inputs of the compiled
    step, so the knob is attached as hidden optimizer state: carried in the
    JAX train state, skipped by the optimizer's save and load.
    """

    allow_infinite = False

    def __init__(self, model):
        super().__init__(model)
        self.knob = None

    def initial_base(self):
        raise NotImplementedError

    def knob_name(self):
        return f"{self.log_key}_knob"

    def _make_program(self, schedule, offset):
        uses_base = schedule.uses_base()
        if uses_base:
            self.knob = Knob(
                self.initial_base(),
                name=self.knob_name(),
                model=self.model,
                allow_infinite=self.allow_infinite,
            )
            if _jax():
                for opt in self.optimizers:
                    internals.optimizer.attach_hidden_optimizer_state(
                        opt, self.knob.variable
                    )

        def program(step):
            base = self.knob.variable if uses_base else None
            return schedule.evaluate(step - offset, base=base)

        return program

    def base(self):
        return (
            float(self.knob) if self.knob is not None else self.initial_base()
        )

    def set_base(self, value):
        self.knob.assign(float(value), model=self.model)

    def _detach_knob(self):
        if self.knob is not None:
            for opt in self.optimizers:
                internals.optimizer.detach_hidden_optimizer_state(
                    opt, self.knob.variable
                )
