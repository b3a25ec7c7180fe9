"""`_internals.optimizer_update`: a momentum program gives the update of
stock SGD at that momentum; the clip program clips; instance attributes
are set and removed."""

import keras
import numpy as np

from keras_trainplus._internals import optimizer_update


def run(opt, steps=3):
    variable = keras.Variable(np.zeros(3, "float32"))
    opt.build([variable])
    for i in range(steps):
        opt.apply([keras.ops.ones(3) * (i + 1)], [variable])
    return keras.ops.convert_to_numpy(variable)


def test_momentum_program_equals_stock_sgd_at_that_momentum():
    for nesterov in (False, True):
        stock = run(keras.optimizers.SGD(0.1, momentum=0.5, nesterov=nesterov))
        opt = keras.optimizers.SGD(0.1, momentum=0.9, nesterov=nesterov)
        optimizer_update.set_hyperparameter_programs(
            opt, {"momentum": lambda step: keras.ops.convert_to_tensor(0.5)}
        )
        np.testing.assert_allclose(run(opt), stock, rtol=1e-6)
        optimizer_update.set_hyperparameter_programs(opt, {})
        assert "update_step" not in vars(opt)


def test_clip_program_clips_the_gradient():
    opt = keras.optimizers.SGD(1.0)
    optimizer_update.set_gradient_program(
        opt, "clip", lambda grads, step: [g * 0.0 + 0.25 for g in grads]
    )
    np.testing.assert_allclose(run(opt, steps=1), -0.25)
    optimizer_update.set_gradient_program(opt, "clip", None)
    assert "_clip_gradients" not in vars(opt)


def test_gradient_programs_run_clip_then_noise():
    """Noise is added to the clipped gradient (whatever the install order),
    and without a clip program the optimizer's own clipping still runs."""
    opt = keras.optimizers.SGD(1.0)
    optimizer_update.set_gradient_program(
        opt, "noise", lambda grads, step: [g + 1.0 for g in grads]
    )
    optimizer_update.set_gradient_program(
        opt, "clip", lambda grads, step: [g * 0.0 for g in grads]
    )
    np.testing.assert_allclose(run(opt, steps=1), -1.0)
    optimizer_update.set_gradient_program(opt, "clip", None)
    optimizer_update.set_gradient_program(opt, "noise", None)
    assert "_clip_gradients" not in vars(opt)
    clipped = keras.optimizers.SGD(1.0, clipvalue=0.5)
    optimizer_update.set_gradient_program(
        clipped, "noise", lambda grads, step: [g + 1.0 for g in grads]
    )
    # gradient 1.0 (see `run`), clipped to 0.5, plus 1.0 of "noise"
    np.testing.assert_allclose(run(clipped, steps=1), -1.5)


def test_instance_attribute_round_trip():
    opt = keras.optimizers.SGD(0.1, momentum=0.9)
    assert optimizer_update.instance_attribute(opt, "momentum") == 0.9
    optimizer_update.set_instance_attribute(opt, "momentum", 0.5)
    assert opt.momentum == 0.5
    optimizer_update.set_instance_attribute(opt, "momentum", 0.9)
    assert opt.momentum == 0.9
