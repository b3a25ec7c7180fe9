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


def _recorded_fit(spe, clip_kwargs, clip_program=None):
    """A linear model trained 8 steps at `steps_per_execution`; a recorder
    stores every update's global gradient norm (before any clipping) in a
    hidden optimizer variable, at index `step`."""
    from keras_trainplus._internals import optimizer as optimizer_core

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(
        keras.optimizers.SGD(0.1, **clip_kwargs), "mse", steps_per_execution=spe
    )
    opt = model.optimizer
    opt.build(model.trainable_variables)
    norms = opt.add_variable((8,), name="recorded_norms")
    optimizer_core.attach_hidden_optimizer_state(opt, norms)

    def record(grads, step):
        norm = keras.ops.sqrt(sum(keras.ops.sum(g * g) for g in grads))
        slot = keras.ops.one_hot(step, 8)
        norms.assign(norms.value * (1.0 - slot) + slot * norm)
        return grads

    optimizer_update.set_gradient_program(opt, "record", record)
    if clip_program is not None:
        optimizer_update.set_gradient_program(opt, "clip", clip_program)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 3)).astype("float32") * 10
    y = rng.normal(size=(32, 2)).astype("float32")
    weights = []

    class Track(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            weights.append([w.numpy() for w in self.model.trainable_weights])

    model.fit(x, y, batch_size=4, shuffle=False, verbose=0, callbacks=[Track()])
    recorded = keras.ops.convert_to_numpy(norms)
    for kind in ("record", "clip"):
        optimizer_update.set_gradient_program(opt, kind, None)
    optimizer_core.detach_hidden_optimizer_state(opt, norms)
    assert "_clip_gradients" not in vars(opt)
    return recorded, model, x, y, weights


def test_recorder_sees_the_gradient_before_any_clipping():
    """At every update, under a clip program or Keras's own
    `global_clipnorm`, at steps_per_execution 1 and 4 (torch: 1): the
    recorded norm is the norm of the unclipped gradient, computed by hand
    from the weights the update started from."""
    from tests.helpers import spe_values

    spes = spe_values()
    for clip_kwargs, program in (
        ({}, None),
        ({"global_clipnorm": 0.01}, None),
        ({}, lambda grads, step: [g * 0.0 for g in grads]),
    ):
        reference, *_ = _recorded_fit(1, clip_kwargs, program)
        _, model, x, y, starts = _recorded_fit(1, {}, None)
        expected = []
        for i in range(8):  # each update's gradient, by hand (mse)
            kernel, bias = starts[i]
            xb, yb = x[4 * i : 4 * i + 4], y[4 * i : 4 * i + 4]
            residual = 2.0 * (xb @ kernel + bias - yb) / yb.size
            grads = [xb.T @ residual, residual.sum(0)]
            expected.append(np.sqrt(sum((g**2).sum() for g in grads)))
        np.testing.assert_allclose(
            _recorded_fit(1, {}, None)[0], expected, rtol=1e-5
        )
        for spe in spes:
            recorded, *_ = _recorded_fit(min(spe, 4), clip_kwargs, program)
            if clip_kwargs or program is not None:
                # clipped updates: the weights differ, the first norm not
                np.testing.assert_allclose(recorded[0], expected[0], rtol=1e-5)
                np.testing.assert_allclose(recorded, reference, rtol=1e-5)
            else:
                np.testing.assert_allclose(recorded, expected, rtol=1e-5)
