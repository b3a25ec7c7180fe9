"""`_internals.optimizer`: the learning-rate program replaces the LR the
update uses and comes off; hidden optimizer state is carried but not
saved; the counters."""

import keras
import numpy as np

from keras_trainplus._internals import optimizer as opt_internals


def applied_update(opt, lr_program=None):
    variable = keras.Variable(np.zeros(3, "float32"))
    opt.build([variable])
    if lr_program is not None:
        opt_internals.set_learning_rate_program(opt, lr_program)
    opt.apply([keras.ops.ones(3)], [variable])
    return float(keras.ops.convert_to_numpy(variable)[0])


def test_learning_rate_program_is_used_and_removed():
    opt = keras.optimizers.SGD(0.5)
    # update 0 uses program(0) = 0.25 instead of the variable's 0.5
    assert applied_update(opt, lambda step, var: var * 0.5) == -0.25
    assert float(opt.learning_rate) == 0.25  # every read sees the program
    opt_internals.set_learning_rate_program(
        opt, lambda step, var: var * 0.5, python_reads_base=True
    )
    assert float(opt.learning_rate) == 0.5  # Python reads the base
    opt_internals.set_learning_rate_program(opt, None)
    assert "_get_current_learning_rate" not in vars(opt)
    assert float(opt.learning_rate) == 0.5


def test_learning_rate_variable_and_optimizers_of():
    opt = keras.optimizers.SGD(0.1)
    assert opt_internals.learning_rate_variable(opt) is not None
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.5)
    assert (
        opt_internals.learning_rate_variable(keras.optimizers.SGD(schedule))
        is None
    )
    wrapped = keras.optimizers.LossScaleOptimizer(opt)
    assert opt_internals.optimizers_of(wrapped) == [opt]


def test_counters():
    opt = keras.optimizers.SGD(0.1, gradient_accumulation_steps=2)
    assert opt_internals.accumulation_steps(opt) == 2
    assert opt_internals.accumulation_steps(keras.optimizers.SGD()) == 1
    variable = keras.Variable(np.zeros(2, "float32"))
    opt.build([variable])
    for _ in range(3):
        opt.apply([keras.ops.ones(2)], [variable])
    assert opt_internals.micro_iterations(opt) == 3
    assert int(keras.ops.convert_to_numpy(opt.iterations)) == 1


def test_hidden_optimizer_state_is_tracked_but_not_saved(tmp_path):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(), loss="mse")
    model.optimizer.build(model.trainable_variables)
    count = len(model.optimizer.variables)
    knob = keras.Variable(0.5, trainable=False)
    opt_internals.attach_hidden_optimizer_state(model.optimizer, knob)
    assert any(v is knob for v in model.optimizer.variables)
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert len(loaded.optimizer.variables) == count
    opt_internals.detach_hidden_optimizer_state(model.optimizer, knob)
    assert len(model.optimizer.variables) == count
    assert "save_own_variables" not in vars(model.optimizer)
