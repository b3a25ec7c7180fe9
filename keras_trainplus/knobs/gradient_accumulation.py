"""`GradientAccumulationKnob`: micro-batches per update, changeable between
epochs without retracing."""

import keras
from keras import ops

from keras_trainplus import _internals as internals
from keras_trainplus import _validation as v
from keras_trainplus.knobs.bound_knob import BoundKnob
from keras_trainplus.knobs.knob import _strategy_scope

ga = internals.gradient_accumulation


class GradientAccumulationKnob(BoundKnob):
    """The accumulation factor k: an update after every k micro-batches with
    the mean of their gradients; the micro-batches left at the end of an
    epoch (fewer than k) make one update with their mean.

    In the compiled step the optimizer's apply accumulates into one
    variable per trainable variable (as Keras's own accumulation) and runs
    the stock update (clipping, weight decay, EMA included) only when the
    window is full or the epoch ends; ``optimizer.iterations`` counts real
    updates. k, the micro-batch count and the epoch length are variables,
    so changing k never retraces. Under `tf.distribute` each replica
    accumulates its own gradients and the update all-reduces their means,
    exactly as one device. On JAX and under `tf.distribute` the update is
    computed every micro-batch and kept only on update micro-batches (a
    stateless step, resp. a replica synchronization, cannot sit inside a
    conditional), as Keras does for its own accumulation on JAX.
    """

    log_key = "gradient_accumulation"

    def __init__(self, model, log_key="gradient_accumulation"):
        super().__init__(model)
        self.log_key = log_key
        for opt in self.optimizers:
            own = internals.optimizer.accumulation_steps(opt)
            if own > 1:
                raise ValueError(
                    "A gradient accumulation schedule cannot run with the "
                    f"optimizer's own accumulation: optimizer `{opt.name}` "
                    f"has gradient_accumulation_steps={own}. Create it "
                    "without `gradient_accumulation_steps`."
                )
        if isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer):
            raise ValueError(
                "A gradient accumulation schedule does not support "
                "`LossScaleOptimizer` (mixed_float16) yet: a micro-batch "
                "whose scaled gradient overflows is skipped before the "
                "accumulation sees it, so an epoch's last window would be "
                "lost. Use mixed_bfloat16 (no loss scaling) or the "
                "optimizer's own `gradient_accumulation_steps`."
            )
        self._state = None
        self._factor = 1

    def value_keys(self):
        return self._optimizer_keys(
            "gradient_accumulation", "gradient accumulation"
        )

    def base(self):
        return float(self._factor)

    def check_value(self, target, value, argument):
        return v.target_value("gradient_accumulation", value, argument)

    def install(self, schedule, offset):
        # The schedule is a number or per-epoch (checked by the run plan,
        # `callbacks/_run_plan.factors_of`, before any install).
        if not self.model.optimizer.built:  # TF builds it at the first step
            with _strategy_scope(self.model):
                self.model.optimizer.build(self.model.trainable_variables)
        self._state = [
            _AccumulationState(self.model, o) for o in self.optimizers
        ]
        for state in self._state:
            ga.set_apply_program(state.optimizer, state.program)

    def epoch_begin(self, position):
        if position.length is None and position.factor > 1:
            raise ValueError(
                "Gradient accumulation applies the micro-batches left at "
                "the end of an epoch as one update, so it needs the number "
                "of steps per epoch, which `fit` does not know (a dataset of "
                "unknown length). Pass `steps_per_epoch` to `fit`."
            )
        self._factor = position.factor
        internals.trainer.sync_jax_state(self.model)
        for state in self._state or []:
            state.start_epoch(position.factor, position.length)

    def set_base(self, value):
        self._factor = int(value)

    def uninstall(self):
        for state in self._state or []:
            ga.set_apply_program(state.optimizer, None)
            state.release()
        self._state = None


def _is_sparse(gradient):
    """A TensorFlow `IndexedSlices` gradient (e.g. of an `Embedding`)."""
    return type(gradient).__name__ == "IndexedSlices"


class _AccumulationState:
    """The variables and the apply program of one optimizer."""

    def __init__(self, model, optimizer):
        self.optimizer = optimizer
        variables = ga.built_variables(optimizer)
        with _strategy_scope(model):
            self.counters = keras.Variable(
                [0, 1, 0],  # micro-batches this epoch, factor, epoch length
                dtype="int32",
                trainable=False,
                name="gradient_accumulation_counters",
                aggregation="only_first_replica",
            )
            self.accumulators = [
                optimizer.add_variable_from_reference(
                    variable, name="trainplus_gradient_accumulator"
                )
                for variable in variables
            ]
        self.own = [self.counters] + self.accumulators
        for variable in self.own:
            internals.optimizer.attach_hidden_optimizer_state(
                optimizer, variable
            )

    def start_epoch(self, factor, length):
        self.counters.assign([0, int(factor), int(length or 0)])
        for acc in self.accumulators:
            acc.assign(ops.zeros(acc.shape, acc.dtype))

    def release(self):
        for variable in self.own:
            internals.optimizer.detach_hidden_optimizer_state(
                self.optimizer, variable
            )

    def program(self, stock, grads, variables):
        opt = self.optimizer
        counters = ops.copy(self.counters.value)
        micro, factor, length = counters[0], counters[1], counters[2]
        count = ops.mod(micro, factor) + 1
        update = ops.logical_or(
            count >= factor, ops.logical_and(length > 0, micro + 1 >= length)
        )
        accs = [self.accumulators[ga.variable_index(opt, v)] for v in variables]
        sums = [
            ops.cast(ops.convert_to_tensor(g), a.dtype) + a.value
            for g, a in zip(grads, accs)
        ]
        means = [s / ops.cast(count, s.dtype) for s in sums]
        self.counters.assign(
            counters + ops.convert_to_tensor([1, 0, 0], "int32")
        )
        if not ga.conditional_update_allowed():
            self._select(stock, update, means, sums, accs, variables)
            return

        def reset():
            ga.assign_per_replica(opt, accs, [ops.zeros_like(s) for s in sums])

        def apply_update():
            if any(_is_sparse(g) for g in grads):
                # A window of one micro-batch updates with the gradients as
                # they came (sparse, like plain training); a longer one
                # with the dense means.
                ops.cond(
                    count > 1,
                    lambda: stock(means, variables),
                    lambda: stock(grads, variables),
                )
            else:
                stock(means, variables)
            # A window of one micro-batch left the accumulators at zero.
            ops.cond(count > 1, reset, lambda: None)

        def accumulate():
            ga.assign_per_replica(opt, accs, sums)
            ga.uncount(opt, 1)

        ops.cond(update, apply_update, accumulate)

    def _select(self, stock, update, means, sums, accs, variables):
        """Runs the update, keeps it only on update micro-batches."""
        opt = self.optimizer
        own = {id(v) for v in self.own}
        touched = list(variables) + [
            v for v in opt.variables if id(v) not in own
        ]
        before = [ops.copy(v.value) for v in touched]
        stock(means, variables)
        ga.assign_per_replica(
            opt,
            touched,
            [
                ops.where(update, v.value, old)
                for v, old in zip(touched, before)
            ],
        )
        ga.assign_per_replica(
            opt, accs, [ops.where(update, ops.zeros_like(s), s) for s in sums]
        )
        ga.uncount(opt, ops.where(update, 0, 1))
