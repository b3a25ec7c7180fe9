"""`LearningRateKnob`: the optimizer's learning rate; its knob is the
optimizer's own learning-rate variable, read by an in-graph program."""

from keras_trainplus import _internals as internals
from keras_trainplus.knobs.bound_knob import BoundKnob
from keras_trainplus.knobs.bound_knob import is_bare_base
from keras_trainplus.knobs.knob import Knob


class LearningRateKnob(BoundKnob):
    """The learning rate; its knob is the optimizer's own LR variable.

    With `replace_schedule`, an optimizer created with its own
    `LearningRateSchedule` is accepted: while installed, a schedule that
    does not read the base replaces it (the LR finder's range).
    """

    def __init__(self, model, log_key="learning_rate", replace_schedule=False):
        super().__init__(model)
        self.log_key = log_key
        self.replace_schedule = replace_schedule
        for opt in self.optimizers:
            variable = internals.optimizer.learning_rate_variable(opt)
            if variable is None and not replace_schedule:
                held = internals.optimizer.learning_rate_variable_or_schedule(
                    opt
                )
                raise ValueError(
                    f"The optimizer `{opt.name}` was created with a "
                    f"learning-rate schedule ({held!r}), "
                    "so a keras_trainplus learning-rate callback cannot "
                    "drive it. Create the optimizer with a float "
                    "`learning_rate`, or pass the keras_trainplus schedule "
                    "to the optimizer directly."
                )
        self.knobs = [
            Knob.for_learning_rate(opt)
            for opt in self.optimizers
            if internals.optimizer.learning_rate_variable(opt) is not None
        ]
        self._uses_base = False
        self._original = [float(knob) for knob in self.knobs]
        self._written = None  # what this target last wrote, read back

    def value_keys(self):
        return [
            (
                ("learning_rate", id(opt)),
                f"the learning rate of optimizer {opt.name!r}",
            )
            for opt in self.optimizers
        ]

    def base(self):
        return float(self.knobs[0]) if self.knobs else None

    def install(self, schedule, offset):
        uses_base = schedule.uses_base()
        self._uses_base = uses_base
        if uses_base and len(self.knobs) < len(self.optimizers):
            raise ValueError(
                "A learning rate that reads the base (`BaseValue`, "
                "`PerEpoch`) needs an optimizer created with a float "
                "`learning_rate`, not a schedule."
            )
        if is_bare_base(schedule):
            return  # the optimizer reads its own variable: no program

        def program(step, lr_variable):
            base = lr_variable if uses_base else None
            return schedule.evaluate(step - offset, base=base)

        for opt in self.optimizers:
            internals.optimizer.set_learning_rate_program(
                opt,
                program,
                needs_variable=not self.replace_schedule,
                python_reads_base=uses_base,
            )

    def uninstall(self):
        for opt in self.optimizers:
            internals.optimizer.set_learning_rate_program(opt, None)

    def set_base(self, value):
        for knob in self.knobs:
            knob.assign(value, model=self.model)
        self._written = self.base()

    def mirror(self, value):
        # With a base in the program the variable *is* the base: keep it.
        if not self._uses_base:
            self.set_base(value)

    def restore_original(self):
        for knob, value in zip(self.knobs, self._original):
            knob.assign(value, model=self.model)

    def own(self):
        self._written = self.base()

    def check_external_write(self, owner):
        if self._written is None or not self.knobs:
            return
        current = float(self.knobs[0])
        if current == self._written or (
            current != current and self._written != self._written
        ):
            return
        raise ValueError(
            f"The learning rate of optimizer {self.optimizers[0].name!r} "
            f"was changed to {current!r} by something other than {owner}, "
            f"which set it to {self._written!r} (e.g. Keras's "
            "`ReduceLROnPlateau` or `LearningRateScheduler`, or user code "
            "assigning `optimizer.learning_rate`). Two writers of one value "
            f"are an error: {owner} owns the learning rate. To combine a "
            "per-epoch writer with a per-step shape, schedule "
            "`schedules.BaseValue() * shape` (or pass `step_shape=`) and "
            "let the other callback write the base."
        )
