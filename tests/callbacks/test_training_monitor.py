"""`TrainingMonitor`: every recorded value equals a reference computed by
hand on the same batch (gradients with the backend's autodiff, weight
changes measured, activations by a forward pass of the weights the update
started from), at every `steps_per_execution`; the diagnoses name the
right layer; the model is stock after `fit`."""

import copy
import warnings

import keras
import numpy as np
import pytest
from keras import ops

from keras_trainplus import callbacks as C
from tests.helpers import spe_values

BACKEND = keras.backend.backend()
B = 8


def _data(n=64, seed=0, features=6):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features)).astype("float32")
    y = (np.sin(x[:, :2] * 2.0).sum(1, keepdims=True)).astype("float32")
    return x, y


def _model(spe=1, optimizer=None, seed=0, **compile_kwargs):
    keras.utils.set_random_seed(seed)
    inp = keras.Input((6,))
    h = keras.layers.Dense(12, activation="relu", name="fc1")(inp)
    h = keras.layers.Dense(8, activation="tanh", name="fc2")(h)
    out = keras.layers.Dense(1, name="head")(h)
    model = keras.Model(inp, out)
    model.compile(
        optimizer or keras.optimizers.Adam(0.01),
        "mse",
        steps_per_execution=spe,
        **compile_kwargs,
    )
    return model


def _sync(model):
    if hasattr(model, "jax_state_sync"):
        model.jax_state_sync()


class _Trajectory(keras.callbacks.Callback):
    """Trainable weights before and after every update (spe 1)."""

    def __init__(self):
        super().__init__()
        self.before, self.after = [], []

    def _weights(self):
        _sync(self.model)
        return [np.array(w.numpy()) for w in self.model.trainable_variables]

    def on_train_batch_begin(self, batch, logs=None):
        self.before.append(self._weights())

    def on_train_batch_end(self, batch, logs=None):
        self.after.append(self._weights())


def _grads(model, weights, x, y):
    """The gradient of the batch's mean squared error at `weights`, by the
    backend's own autodiff (GradientTape, jax.grad, torch autograd)."""
    nt = [v.numpy() for v in model.non_trainable_variables]

    def loss_of(tv):
        pred, _ = model.stateless_call(tv, nt, x, training=True)
        return ops.mean(
            ops.square(ops.subtract(pred, ops.convert_to_tensor(y)))
        )

    if BACKEND == "jax":
        import jax

        return [np.asarray(g) for g in jax.grad(loss_of)(weights)]
    if BACKEND == "torch":
        import torch

        tv = [torch.tensor(w, requires_grad=True) for w in weights]
        loss_of(tv).backward()
        return [t.grad.numpy() for t in tv]
    import tensorflow as tf

    tv = [tf.Variable(w) for w in weights]
    with tf.GradientTape() as tape:
        loss = loss_of(tv)
    return [g.numpy() for g in tape.gradient(loss, tv)]


def _reference(model, trajectory, x, y, steps):
    """Per recorded update: every statistic, computed by hand."""
    layers = [model.get_layer(n) for n in ("fc1", "fc2", "head")]
    index = {id(v): i for i, v in enumerate(model.trainable_variables)}
    groups = [
        [index[id(v)] for v in layer.trainable_variables] for layer in layers
    ]
    probe = keras.Model(model.input, [layer.output for layer in layers])
    out = {k: [] for k in C.training_monitor.STATS}
    for step in steps:
        before, after = trajectory.before[step], trajectory.after[step]
        xb, yb = x[B * step : B * step + B], y[B * step : B * step + B]
        grads = _grads(model, before, xb, yb)

        def norm(arrays, group):
            return np.sqrt(
                sum(
                    np.sum(np.square(arrays[i], dtype=np.float64))
                    for i in group
                )
            )

        out["grad_norm"].append([norm(grads, g) for g in groups])
        out["weight_norm"].append([norm(before, g) for g in groups])
        delta = [a - b for a, b in zip(after, before)]
        out["update_ratio"].append(
            [norm(delta, g) / norm(before, g) for g in groups]
        )
        probe.set_weights(before)
        acts = [ops.convert_to_numpy(a).astype(np.float64) for a in probe(xb)]
        out["activation_mean"].append([a.mean() for a in acts])
        out["activation_std"].append([a.std() for a in acts])
        out["dead_fraction"].append(
            [np.mean((a != 0).sum(0) == 0) for a in acts]
        )
    return {k: np.array(v) for k, v in out.items()}


def _fit(spe=1, every=3, epochs=2, callbacks=(), **kwargs):
    x, y = _data()
    model = _model(spe)
    monitor = C.TrainingMonitor(every_n_steps=every, **kwargs)
    history = model.fit(
        x, y, batch_size=B, epochs=epochs, shuffle=False, verbose=0,
        callbacks=[monitor, *callbacks],
    )  # fmt: skip
    return model, monitor, history, x, y


def test_every_statistic_equals_the_reference_by_hand():
    trajectory = _Trajectory()
    model, monitor, _, x, y = _fit(1, every=3, epochs=1, callbacks=[trajectory])
    steps = monitor.steps
    np.testing.assert_array_equal(steps, np.arange(0, 8, 3))
    assert monitor.layer_names == ["fc1", "fc2", "head"]
    expected = _reference(model, trajectory, x, y, steps)
    for stat, values in expected.items():
        assert monitor.history[stat].shape == (len(steps), 3), stat
        np.testing.assert_allclose(
            monitor.history[stat], values, rtol=1e-5, atol=1e-7, err_msg=stat
        )
    assert "clipped" not in monitor.history  # no clip ran


@pytest.mark.parametrize("spe", [s for s in spe_values() if s > 1])
def test_steps_per_execution_records_the_same_values(spe):
    _, reference, *_ = _fit(1, every=3)
    _, monitor, *_ = _fit(spe, every=3)
    np.testing.assert_array_equal(monitor.steps, reference.steps)
    assert len(monitor.steps) == 6  # updates 0..15, every 3rd
    for stat, values in reference.history.items():
        np.testing.assert_allclose(
            monitor.history[stat], values, rtol=1e-6, atol=1e-7, err_msg=stat
        )


def test_epoch_summaries_are_python_floats_in_logs():
    model, monitor, history, *_ = _fit(1, every=2)
    assert len(monitor.epoch_summaries) == 2
    for key in ("monitor/grad_norm_max", "monitor/update_ratio_min"):
        assert len(history.history[key]) == 2
        assert all(type(value) is float for value in history.history[key])
    value, layer, step = monitor.epoch_summaries[1]["monitor/grad_norm_max"]
    j = monitor.layer_names.index(layer)
    i = list(monitor.steps).index(step)
    assert monitor.history["grad_norm"][i, j] == value
    second = monitor.history["grad_norm"][monitor.steps >= 8]
    assert value == second.max()


def test_the_model_and_optimizer_are_stock_after_fit():
    x, y = _data()
    model = _model()
    model.fit(x, y, batch_size=B, epochs=1, verbose=0)
    keys, opt_keys = set(vars(model)), set(vars(model.optimizer))
    n_vars = len(model.optimizer.variables)
    layer_vars = [len(layer.variables) for layer in model.layers]
    monitor = C.TrainingMonitor(every_n_steps=1)
    model.fit(x, y, batch_size=B, epochs=1, verbose=0, callbacks=[monitor])
    assert set(vars(model)) - keys <= {"_jax_state"}
    assert set(vars(model.optimizer)) == opt_keys
    assert len(model.optimizer.variables) == n_vars
    assert [len(layer.variables) for layer in model.layers] == layer_vars
    assert all("call" not in vars(layer) for layer in model.layers)

    class Boom(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 3:
                raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        model.fit(
            x, y, batch_size=B, epochs=1, verbose=0, callbacks=[monitor, Boom()]
        )
    assert set(vars(model.optimizer)) == opt_keys
    assert len(model.optimizer.variables) == n_vars
    assert [len(layer.variables) for layer in model.layers] == layer_vars
    assert all("call" not in vars(layer) for layer in model.layers)
    # the next plain fit runs the stock step
    model.fit(x, y, batch_size=B, epochs=1, verbose=0)


def test_validation_and_predict_do_not_record():
    x, y = _data()
    _, plain, *_ = _fit(1, every=2, epochs=1)
    model = _model()
    monitor = C.TrainingMonitor(every_n_steps=2)
    model.fit(
        x, y, batch_size=B, epochs=1, shuffle=False, verbose=0,
        validation_data=(x[:16] * 5, y[:16]), callbacks=[monitor],
    )  # fmt: skip
    for stat, values in plain.history.items():
        np.testing.assert_allclose(monitor.history[stat], values, rtol=1e-6)


def test_a_constructed_dead_unit_and_a_dead_layer():
    keras.utils.set_random_seed(0)
    inp = keras.Input((6,))
    h = keras.layers.Dense(4, activation="relu", name="some_dead")(inp)
    h = keras.layers.Dense(20, activation="relu", name="all_dead")(h)
    out = keras.layers.Dense(1, name="head")(h)
    model = keras.Model(inp, out)
    model.compile(keras.optimizers.SGD(0.0), "mse")
    kernel, bias = model.get_layer("some_dead").get_weights()
    kernel[:, 2], bias[2] = 0.0, -1.0  # unit 2 is 0 for every input
    model.get_layer("some_dead").set_weights([kernel, bias])
    kernel, bias = model.get_layer("all_dead").get_weights()
    kernel[:, :19], bias[:19] = 0.0, -1.0  # 19 of 20 units dead: 95%
    model.get_layer("all_dead").set_weights([kernel, bias])
    x, y = _data()
    x = np.abs(x) + 0.1  # the other units of "some_dead" fire sometimes
    monitor = C.TrainingMonitor(every_n_steps=1)
    with pytest.warns(
        RuntimeWarning, match="95% of the units of layer 'all_dead'"
    ):
        model.fit(x, y, batch_size=B, epochs=1, verbose=0, callbacks=[monitor])
    dead = monitor.history["dead_fraction"]
    assert dead[:, 1].min() >= 0.95
    assert dead[:, 0].min() >= 0.25  # unit 2 at least
    report = monitor.diagnose()
    assert "'all_dead' are 0 for every example" in report


def _messages(caught):
    return [
        str(w.message) for w in caught if "TrainingMonitor" in str(w.message)
    ]


def _deep(activation, depth, init="glorot_uniform"):
    inp = keras.Input((8,))
    h = inp
    for i in range(depth):
        h = keras.layers.Dense(
            32, activation, kernel_initializer=init, name=f"d{i}"
        )(h)
    return keras.Model(inp, keras.layers.Dense(1, name="out")(h))


def _fit_caught(model, x, y, monitor, epochs=1):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(
            x, y, batch_size=32, epochs=epochs, verbose=0, callbacks=[monitor]
        )
    return _messages(caught)


def test_vanishing_gradients_are_named_at_the_input_layers():
    keras.utils.set_random_seed(0)
    model = _deep("sigmoid", 10)
    model.compile(keras.optimizers.SGD(0.01), "mse")
    x = np.random.default_rng(0).normal(size=(256, 8)).astype("float32")
    y = (x[:, :1] > 0).astype("float32")
    monitor = C.TrainingMonitor(every_n_steps=2)
    messages = _fit_caught(model, x, y, monitor)
    named = [m.split("'")[1] for m in messages if "vanishing" in m]
    assert "d0" in named and "out" not in named and "d9" not in named
    ratio = monitor.history["grad_norm"] / monitor.history["weight_norm"]
    for name in named:  # 3 records in a row below the documented 1e-5
        j = monitor.layer_names.index(name)
        assert (ratio[:3, j] < 1e-5).all() or (ratio[:, j] < 1e-5).sum() >= 3
    assert not any("exploding" in m or "non-finite" in m for m in messages)
    assert "vanishing gradient in layer 'd0'" in monitor.diagnose()


def test_exploding_gradients_after_a_learning_rate_jump():
    keras.utils.set_random_seed(0)
    model = _deep("relu", 3, keras.initializers.RandomNormal(stddev=0.3))
    model.compile(keras.optimizers.SGD(0.001), "mse")
    x = np.random.default_rng(0).normal(size=(256, 8)).astype("float32")
    y = (x[:, :1] > 0).astype("float32")
    jump = keras.callbacks.LearningRateScheduler(
        lambda epoch: 0.001 if epoch == 0 else 0.5
    )
    monitor = C.TrainingMonitor(every_n_steps=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(
            x, y, batch_size=32, epochs=2, verbose=0, callbacks=[monitor, jump]
        )
    messages = [m for m in _messages(caught) if "exploding" in m]
    assert messages
    assert not any("vanishing" in m for m in _messages(caught))
    steps = list(monitor.steps)
    for message in messages:
        name = message.split("'")[1]
        step = int(message.split("at update ")[1].split(":")[0])
        assert step >= 8  # after the jump (8 updates per epoch)
        j, i = monitor.layer_names.index(name), steps.index(step)
        grad = monitor.history["grad_norm"][:, j]
        earlier = grad[:i][np.isfinite(grad[:i])]
        ratio = monitor.history["update_ratio"][i, j]
        assert grad[i] > 10 * np.median(earlier) or ratio > 1


def test_exploding_gradients_from_a_large_init_and_a_high_rate():
    keras.utils.set_random_seed(0)
    init = keras.initializers.RandomNormal(stddev=0.5)
    model = _deep("relu", 4, init)
    model.compile(keras.optimizers.SGD(0.1), "mse")
    x = np.random.default_rng(0).normal(size=(256, 8)).astype("float32")
    y = (x[:, :1] > 0).astype("float32")
    monitor = C.TrainingMonitor(every_n_steps=1)
    messages = _fit_caught(model, x, y, monitor)
    exploding = [m for m in messages if "exploding gradient" in m]
    assert exploding and not any("vanishing" in m for m in messages)
    for message in exploding:  # each named layer did explode
        name = message.split("'")[1]
        step = int(message.split("at update ")[1].split(":")[0])
        j, i = monitor.layer_names.index(name), list(monitor.steps).index(step)
        grad = monitor.history["grad_norm"][: i + 1, j]
        jump = i > 0 and grad[i] > 10 * np.median(grad[:i])
        assert jump or monitor.history["update_ratio"][i, j] > 1


class _SqrtGate(keras.layers.Layer):
    """``h * sqrt(w * gate)``: at a gate of 0 its own weight's gradient is
    0/0 = NaN while the gradient it passes down, sqrt(0) = 0, is finite."""

    def build(self, input_shape):
        self.w = self.add_weight(shape=(), initializer="ones", name="w")

    def call(self, inputs):
        h, gate = inputs
        return h * ops.sqrt(self.w * gate)


def test_a_nan_gradient_is_reported_at_its_layer_and_update():
    keras.utils.set_random_seed(0)
    x_in, gate_in = keras.Input((6,)), keras.Input((1,))
    h = keras.layers.Dense(8, activation="tanh", name="below")(x_in)
    h = _SqrtGate(name="gate")([h, gate_in])
    h = keras.layers.Dense(8, activation="tanh", name="above")(h)
    out = keras.layers.Dense(1, name="head")(h)
    model = keras.Model([x_in, gate_in], out)
    model.compile(keras.optimizers.SGD(0.01), "mse")
    x, y = _data()
    gate = np.ones((64, 1), "float32")
    gate[5 * B : 6 * B] = 0.0  # the batch of update 5
    monitor = C.TrainingMonitor(every_n_steps=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(
            [x, gate], y, batch_size=B, epochs=1, shuffle=False, verbose=0,
            callbacks=[monitor],
        )  # fmt: skip
    first = next(m for m in _messages(caught) if "non-finite" in m)
    assert "at update 5 in layers 'gate' (" in first
    assert "the loss was finite: it arose in 'gate'" in first
    finite = np.isfinite(monitor.history["grad_norm"])
    assert finite[:5].all() and not finite[5, 1] and finite[5, [0, 2, 3]].all()


@pytest.mark.parametrize(
    "clip", [{"global_clipnorm": 1e-3}, {"clipnorm": 1e-3}, {"clipvalue": 1e9}]
)
def test_clipped_share_and_the_norm_before_clipping(clip):
    trajectory = _Trajectory()
    x, y = _data()
    model = _model(optimizer=keras.optimizers.SGD(0.05, **clip))
    monitor = C.TrainingMonitor(every_n_steps=2)
    model.fit(
        x, y, batch_size=B, epochs=1, shuffle=False, verbose=0,
        callbacks=[monitor, trajectory],
    )  # fmt: skip
    expected = _reference(model, trajectory, x, y, monitor.steps)
    np.testing.assert_allclose(
        monitor.history["grad_norm"], expected["grad_norm"], rtol=1e-5
    )
    clipped = monitor.history["clipped"]
    assert clipped.shape == (4, 3)
    # a tiny norm clips every layer; a huge value threshold none
    assert (clipped == (0.0 if "clipvalue" in clip else 1.0)).all()
    if "clipnorm" in clip or "global_clipnorm" in clip:
        assert (monitor.history["update_ratio"] < 1e-3).all()


def test_clip_schedule_marks_the_records_it_clipped():
    x, y = _data()
    model = _model(optimizer=keras.optimizers.SGD(0.05))
    clip = C.GradientClipScheduler({0: float("inf"), 1: 1e-3})
    monitor = C.TrainingMonitor(every_n_steps=1)
    model.fit(
        x, y, batch_size=B, epochs=2, shuffle=False, verbose=0,
        callbacks=[clip, monitor],
    )  # fmt: skip
    clipped = monitor.history["clipped"]
    assert (clipped[:8] == 0).all() and (clipped[8:] == 1).all()
    shares = [s["monitor/clipped_share"][0] for s in monitor.epoch_summaries]
    assert shares == [0.0, 1.0]


def test_keras_gradient_accumulation_records_updates():
    """Each recorded update's gradient is the mean over its micro-batches:
    the gradient of the double batch (mse, equal halves)."""
    x, y = _data()
    big = _model(optimizer=keras.optimizers.SGD(0.05))
    reference = C.TrainingMonitor(every_n_steps=1, stats=["grad_norm"])
    big.fit(x, y, batch_size=2 * B, epochs=1, shuffle=False, verbose=0,
            callbacks=[reference])  # fmt: skip
    model = _model(
        optimizer=keras.optimizers.SGD(0.05, gradient_accumulation_steps=2)
    )
    monitor = C.TrainingMonitor(every_n_steps=1, stats=["grad_norm"])
    model.fit(x, y, batch_size=B, epochs=1, shuffle=False, verbose=0,
              callbacks=[monitor])  # fmt: skip
    np.testing.assert_array_equal(monitor.steps, np.arange(4))
    np.testing.assert_allclose(
        monitor.history["grad_norm"], reference.history["grad_norm"], rtol=1e-5
    )


def test_accumulation_schedule_records_updates():
    x, y = _data()
    big = _model(optimizer=keras.optimizers.SGD(0.05))
    reference = C.TrainingMonitor(every_n_steps=1, stats=["grad_norm"])
    big.fit(x, y, batch_size=2 * B, epochs=1, shuffle=False, verbose=0,
            callbacks=[reference])  # fmt: skip
    model = _model(optimizer=keras.optimizers.SGD(0.05))
    monitor = C.TrainingMonitor(every_n_steps=1, stats=["grad_norm"])
    model.fit(
        x, y, batch_size=B, epochs=1, shuffle=False, verbose=0,
        callbacks=[C.GradientAccumulationScheduler(2), monitor],
    )  # fmt: skip
    np.testing.assert_array_equal(monitor.steps, np.arange(4))
    np.testing.assert_allclose(
        monitor.history["grad_norm"], reference.history["grad_norm"], rtol=1e-5
    )


@pytest.mark.tf_only
def test_with_and_without_xla_the_same_records():
    runs = []
    for jit in (False, True):
        x, y = _data()
        model = _model(spe=4, jit_compile=jit)
        monitor = C.TrainingMonitor(every_n_steps=3)
        model.fit(x, y, batch_size=B, epochs=1, shuffle=False, verbose=0,
                  callbacks=[monitor])  # fmt: skip
        runs.append(monitor.history)
    for stat, values in runs[0].items():
        np.testing.assert_allclose(runs[1][stat], values, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"every_n_steps": 0}, "every_n_steps"),
        ({"every_n_steps": 2.5}, "every_n_steps"),
        ({"every_n_steps": "10"}, "every_n_steps"),
        ({"layers": 3}, "layers"),
        ({"layers": []}, "layers"),
        ({"layers": ["fc1", 2]}, "layers"),
        ({"stats": ("grad_norm", "nope")}, "stats"),
        ({"stats": ()}, "stats"),
        ({"stats": 5}, "stats"),
        ({"log_dir": 3}, "log_dir"),
        ({"warn": "yes"}, "warn"),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        C.TrainingMonitor(**kwargs)


def test_unknown_layer_and_two_monitors_fail_at_fit_and_leave_it_stock():
    x, y = _data()
    model = _model()
    model.fit(x, y, verbose=0)
    opt_keys = set(vars(model.optimizer))
    with pytest.raises(ValueError, match="no layer 'nope'"):
        model.fit(
            x, y, verbose=0, callbacks=[C.TrainingMonitor(layers=["nope"])]
        )
    with pytest.raises(ValueError, match="Two `TrainingMonitor`"):
        model.fit(
            x, y, verbose=0,
            callbacks=[C.TrainingMonitor(), C.TrainingMonitor()],
        )  # fmt: skip
    assert set(vars(model.optimizer)) == opt_keys
    assert all("call" not in vars(layer) for layer in model.layers)
    model.fit(x, y, verbose=0, callbacks=[C.TrainingMonitor()])


def test_config_round_trip_and_deep_copy():
    monitor = C.TrainingMonitor(
        every_n_steps=4, layers=["fc2"], stats=["grad_norm", "dead_fraction"],
        log_dir=None, warn=False,
    )  # fmt: skip
    config = monitor.get_config()
    clone = C.TrainingMonitor.from_config(config)
    assert clone.get_config() == config
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(monitor)
    )
    assert type(restored) is C.TrainingMonitor
    assert restored.get_config() == config
    x, y = _data()
    model = _model()
    model.fit(x, y, batch_size=B, verbose=0, callbacks=[monitor])
    twin = copy.deepcopy(monitor)
    assert twin.layer_names == ["fc2"]
    np.testing.assert_array_equal(
        twin.history["grad_norm"], monitor.history["grad_norm"]
    )
    assert set(monitor.history) == {"grad_norm", "dead_fraction"}
    # state resets at the next fit
    model.fit(x, y, batch_size=B, epochs=1, verbose=0, callbacks=[monitor])
    assert monitor.steps[0] == 8 and len(monitor.steps) == 2


def test_watch_given_layers_weightless_ones_too():
    x, y = _data()
    keras.utils.set_random_seed(0)
    inp = keras.Input((6,))
    h = keras.layers.Dense(12, name="fc1")(inp)
    h = keras.layers.ReLU(name="relu")(h)
    out = keras.layers.Dense(1, name="head")(h)
    model = keras.Model(inp, out)
    model.compile(keras.optimizers.SGD(0.01), "mse")
    layer = model.get_layer("head")
    monitor = C.TrainingMonitor(every_n_steps=1, layers=["relu", layer])
    model.fit(x, y, batch_size=B, epochs=1, verbose=0, callbacks=[monitor])
    assert monitor.layer_names == ["relu", "head"]
    grad = monitor.history["grad_norm"]
    assert np.isnan(grad[:, 0]).all() and np.isfinite(grad[:, 1]).all()
    assert (monitor.history["dead_fraction"][:, 0] >= 0).all()


def test_convolution_units_are_channels():
    keras.utils.set_random_seed(0)
    inp = keras.Input((6, 6, 2))
    conv = keras.layers.Conv2D(4, 3, activation="relu", name="conv")
    h = keras.layers.GlobalAveragePooling2D()(conv(inp))
    model = keras.Model(inp, keras.layers.Dense(1, name="head")(h))
    model.compile(keras.optimizers.SGD(0.0), "mse")
    kernel, bias = conv.get_weights()
    kernel[..., 1], bias[1] = 0.0, -1.0  # channel 1 is 0 at every position
    conv.set_weights([kernel, bias])
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 6, 6, 2)).astype("float32")
    y = rng.normal(size=(32, 1)).astype("float32")
    monitor = C.TrainingMonitor(every_n_steps=1, layers=["conv"])
    model.fit(x, y, batch_size=B, verbose=0, callbacks=[monitor])
    out = ops.convert_to_numpy(conv(x[:B]))
    alive = (out != 0).reshape(-1, 4).sum(0)
    assert alive[1] == 0
    expected = np.mean(alive == 0)
    np.testing.assert_allclose(monitor.history["dead_fraction"][0, 0], expected)


def test_plot_and_tensorboard_events(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import (
        EventAccumulator,
    )

    x, y = _data()
    model = _model()
    monitor = C.TrainingMonitor(every_n_steps=2, log_dir=tmp_path / "tb")
    model.fit(x, y, batch_size=B, epochs=2, verbose=0, callbacks=[monitor])
    fig = monitor.plot(tmp_path / "heat.png")
    assert (tmp_path / "heat.png").stat().st_size > 5000
    assert len(fig.axes) >= 6
    events = EventAccumulator(
        str(tmp_path / "tb"), size_guidance={"scalars": 0, "histograms": 0}
    ).Reload()
    scalars = events.Tags()["scalars"]
    assert "grad_norm/fc1" in scalars and "update_ratio/head" in scalars
    recorded = [e.value for e in events.Scalars("grad_norm/fc2")]
    np.testing.assert_allclose(
        recorded, monitor.history["grad_norm"][:, 1], rtol=1e-6
    )
    assert [e.step for e in events.Scalars("grad_norm/fc2")] == list(
        monitor.steps
    )
    assert "weights/fc1" in events.Tags()["histograms"]


def test_a_long_epoch_wraps_the_ring_buffer_without_losing_records(
    monkeypatch,
):
    from keras_trainplus.callbacks import training_monitor

    # a small memory budget: the buffers wrap many times per epoch
    monkeypatch.setattr(training_monitor, "_BUFFER_BUDGET", 200)
    spe = max(spe_values())
    x = np.random.default_rng(0).normal(size=(1600, 6)).astype("float32")
    y = x[:, :1] * 2
    model = _model(spe)
    monitor = C.TrainingMonitor(every_n_steps=1, stats=["grad_norm"])
    model.fit(x, y, batch_size=4, epochs=2, verbose=0, callbacks=[monitor])
    assert monitor._capacity < 100  # read many times per epoch
    np.testing.assert_array_equal(monitor.steps, np.arange(800))
    assert np.isfinite(monitor.history["grad_norm"]).all()


def test_embedding_gradient_rows_of_repeated_ids_are_summed():
    """An embedding's gradient (TF: `IndexedSlices` with a row per token)
    has the norm of the update SGD applies: ||delta w|| / lr."""
    keras.utils.set_random_seed(0)
    inp = keras.Input((7,), dtype="int32")
    h = keras.layers.Embedding(5, 4, name="emb")(inp)
    h = keras.layers.GlobalAveragePooling1D()(h)
    model = keras.Model(inp, keras.layers.Dense(1, name="head")(h))
    model.compile(keras.optimizers.SGD(0.1), "mse")
    rng = np.random.default_rng(0)
    x = rng.integers(0, 5, size=(16, 7)).astype("int32")  # ids repeat
    y = rng.normal(size=(16, 1)).astype("float32")
    before = [w.numpy().copy() for w in model.trainable_variables]
    monitor = C.TrainingMonitor(every_n_steps=1)
    model.fit(x, y, batch_size=16, verbose=0, callbacks=[monitor])
    after = [w.numpy() for w in model.trainable_variables]
    emb = np.sqrt(np.sum(np.square(after[0] - before[0]))) / 0.1
    np.testing.assert_allclose(
        monitor.history["grad_norm"][0, 0], emb, rtol=1e-5
    )


def test_after_an_exception_the_next_fit_runs_a_stock_train_function():
    from keras_trainplus import _internals as internals

    x, y = _data()
    model = _model()
    monitor = C.TrainingMonitor(every_n_steps=1)

    class Boom(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 3:
                raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        model.fit(x, y, batch_size=B, verbose=0, callbacks=[monitor, Boom()])
    # the records of the updates that ran are kept (batch 3 raised after
    # its update)
    np.testing.assert_array_equal(monitor.steps, [0, 1, 2, 3])
    fn = internals.fit_loop.unguarded(model.train_function)
    assert "RecordingSwitch" not in getattr(fn, "__qualname__", "")
    model.fit(x, y, batch_size=B, verbose=0)
    fn = internals.fit_loop.unguarded(model.train_function)
    assert "RecordingSwitch" not in getattr(fn, "__qualname__", "")


class _Net(keras.Model):
    def __init__(self):
        super().__init__(name="net")
        self.fc1 = keras.layers.Dense(8, activation="relu", name="fc1")
        self.shared = keras.layers.Dense(8, activation="relu", name="shared")
        self.head = keras.layers.Dense(1, name="head")

    def call(self, x):
        return self.head(self.shared(self.shared(self.fc1(x))))


def test_a_subclassed_model_built_by_fit():
    x, y = _data()
    model = _Net()
    model.compile(keras.optimizers.SGD(0.01), "mse")
    monitor = C.TrainingMonitor(every_n_steps=1)
    history = model.fit(
        x, y, batch_size=B, epochs=2, verbose=0, callbacks=[monitor]
    )
    assert monitor.layer_names == ["fc1", "shared", "head"]
    np.testing.assert_array_equal(monitor.steps, np.arange(16))
    assert len(history.history["loss"]) == 2  # no batch lost to the build
    for values in monitor.history.values():
        assert np.isfinite(values).all()


def test_nested_models_paths_and_names_used_twice():
    keras.utils.set_random_seed(0)

    def tower(name):
        inp = keras.Input((6,))
        out = keras.layers.Dense(4, activation="tanh", name="fc")(inp)
        return keras.Model(inp, out, name=name)

    inp = keras.Input((6,))
    left, right = tower("left"), tower("right")
    h = keras.layers.Concatenate()([left(inp), right(inp)])
    model = keras.Model(inp, keras.layers.Dense(1, name="head")(h))
    model.compile(keras.optimizers.SGD(0.01), "mse")
    x, y = _data()
    monitor = C.TrainingMonitor(every_n_steps=1)
    model.fit(x, y, batch_size=B, verbose=0, callbacks=[monitor])
    assert monitor.layer_names == ["left/fc", "right/fc", "head"]
    given = C.TrainingMonitor(every_n_steps=1, layers=["right/fc", left])
    model.fit(x, y, batch_size=B, verbose=0, callbacks=[given])
    assert given.layer_names == ["right/fc", "left"]
    # a nested model given stands for all its trainable variables
    kernel, bias = left.get_layer("fc").trainable_variables
    weight = np.sqrt(np.sum(kernel.numpy() ** 2) + np.sum(bias.numpy() ** 2))
    assert np.isfinite(given.history["grad_norm"]).all()
    last = given.history["weight_norm"][-1, 1]
    assert last == pytest.approx(weight, rel=0.05)  # one update before
    with pytest.raises(ValueError, match="'left/fc', 'right/fc'"):
        model.fit(x, y, verbose=0, callbacks=[C.TrainingMonitor(layers="fc")])


def test_every_epoch_has_every_summary_key():
    x, y = _data()
    model = _model()
    monitor = C.TrainingMonitor(every_n_steps=20, stats=["grad_norm"])
    history = model.fit(
        x, y, batch_size=B, epochs=3, verbose=0, callbacks=[monitor]
    )  # records at updates 0 and 20: epochs 0 and 2
    values = history.history["monitor/grad_norm_max"]
    assert len(values) == 3 and np.isnan(values[1])
    assert np.isfinite(values[0]) and np.isfinite(values[2])
