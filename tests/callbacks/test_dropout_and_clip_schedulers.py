"""Dropout scheduling and gradient-clip switching, measured inside compiled
`fit` (never only the Python attribute): stock layers, every backend,
XLA, steps_per_execution, no retrace, saving and checkpoints."""

import copy
import math
import warnings

import keras
import numpy as np
import pytest
from helpers import BACKEND
from helpers import jit_values
from helpers import spe_values
from keras import ops

from keras_trainplus import callbacks as C
from keras_trainplus import layers as L
from keras_trainplus import schedules as S

SCHEDULE = {0: 0.5, 1: 0.0, 2: 0.25}


def zero_frac(y_true, y_pred):
    return ops.mean(ops.cast(ops.equal(y_pred, 0.0), "float32"))


class TraceCounter(keras.layers.Layer):
    """Counts how often its `call` runs: once per trace in graph mode."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.count = 0

    def call(self, x):
        self.count += 1
        return x


def dropout_model(layer, spe=1, jit="auto", units=256):
    inp = keras.Input((units,))
    counter = TraceCounter()
    h = layer(counter(inp))
    out = keras.layers.Dense(
        units, use_bias=False, kernel_initializer="identity"
    )(h)
    model = keras.Model(inp, out)
    model.compile(
        keras.optimizers.SGD(0.0),
        loss="mse",
        metrics=[zero_frac],
        steps_per_execution=spe,
        jit_compile=jit,
    )
    return model, counter


def fit_ones(model, callbacks, epochs=3, units=256, samples=512):
    x = np.ones((samples, units), "float32")
    return model.fit(
        x,
        x,
        batch_size=32,
        epochs=epochs,
        verbose=0,
        shuffle=False,
        callbacks=callbacks,
    )


@pytest.mark.parametrize("jit", jit_values())
@pytest.mark.parametrize("spe", spe_values())
def test_stock_dropout_follows_the_schedule(spe, jit):
    model, _ = dropout_model(keras.layers.Dropout(0.5), spe, jit)
    history = fit_ones(model, [C.DropoutScheduler(SCHEDULE)])
    np.testing.assert_allclose(
        history.history["zero_frac"], [0.5, 0.0, 0.25], atol=0.01
    )
    assert history.history["dropout_rate"] == [0.5, 0.0, 0.25]


def test_dropout_zero_raised_later_and_left_at_the_last_rate():
    layer = keras.layers.Dropout(0.0)
    model, _ = dropout_model(layer)
    history = fit_ones(model, [C.DropoutScheduler({0: 0.0, 2: 0.3})])
    np.testing.assert_allclose(
        history.history["zero_frac"], [0.0, 0.0, 0.3], atol=0.01
    )
    assert layer.rate == pytest.approx(0.3)
    assert "call" not in layer.__dict__  # stock again
    # A later plain fit uses the layer's (new) rate.
    again = fit_ones(model, [], epochs=1)
    assert again.history["zero_frac"][0] == pytest.approx(0.3, abs=0.01)
    assert not model.weights[0].path.endswith("rate")


def test_per_step_schedule():
    model, _ = dropout_model(keras.layers.Dropout(0.2))
    model.compile(keras.optimizers.SGD(0.0), loss="mse", metrics=[zero_frac])
    history = fit_ones(model, [C.DropoutScheduler(S.Linear(0.0, 0.6, 48))])
    # 16 updates per epoch: the epoch means of a linear ramp over steps.
    expected = [0.6 * (16 * e + 7.5) / 48 for e in range(3)]
    np.testing.assert_allclose(
        history.history["zero_frac"], expected, atol=0.01
    )


@pytest.mark.parametrize(
    "make",
    [
        lambda: keras.layers.SpatialDropout1D(0.5),
        lambda: keras.layers.AlphaDropout(0.5),
        lambda: keras.layers.GaussianDropout(0.5),
        lambda: L.ScheduledDropout(0.5),
    ],
)
def test_other_dropout_kinds(make):
    layer = make()
    spatial = isinstance(layer, keras.layers.SpatialDropout1D)
    inp = keras.Input((16, 16) if spatial else (256,))
    out = layer(inp)
    out = keras.layers.Reshape((256,))(out) if spatial else out
    out = keras.layers.Dense(
        256, use_bias=False, kernel_initializer="identity"
    )(out)
    model = keras.Model(inp, out)

    def spread(y_true, y_pred):  # 0 when nothing is dropped/perturbed
        return ops.mean(ops.abs(y_pred - 1.0))

    model.compile(keras.optimizers.SGD(0.0), loss="mse", metrics=[spread])
    x = np.ones((512,) + tuple(inp.shape[1:]), "float32")
    history = model.fit(
        x,
        np.ones((512, 256), "float32"),
        batch_size=32,
        epochs=2,
        verbose=0,
        callbacks=[C.DropoutScheduler({0: 0.0, 1: 0.5})],
    )
    first, second = history.history["spread"]
    assert first == pytest.approx(0.0, abs=1e-6)
    assert second > 0.3


def test_layer_selection():
    inp = keras.Input((256,))
    a = keras.layers.Dropout(0.5, name="keep_me")(inp)
    b = keras.layers.Dropout(0.0, name="drop_me")(a)
    out = keras.layers.Dense(
        256, use_bias=False, kernel_initializer="identity"
    )(b)
    model = keras.Model(inp, out)
    model.compile(keras.optimizers.SGD(0.0), loss="mse", metrics=[zero_frac])
    history = fit_ones(
        model, [C.DropoutScheduler({0: 0.3}, layers=["drop_me"])], epochs=1
    )
    # 1 - (1 - 0.5) * (1 - 0.3)
    assert history.history["zero_frac"][0] == pytest.approx(0.65, abs=0.01)
    with pytest.raises(ValueError, match="No dropout layer 'nope'"):
        fit_ones(model, [C.DropoutScheduler({0: 0.3}, layers=["nope"])])
    plain = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    plain.compile("sgd", "mse")
    with pytest.raises(ValueError, match="no dropout layers"):
        plain.fit(
            np.ones((4, 4)),
            np.ones((4, 1)),
            verbose=0,
            callbacks=[C.DropoutScheduler({0: 0.1})],
        )


def test_hyperparameter_scheduler_dropout_target_by_name():
    inp = keras.Input((256,))
    h = keras.layers.Dropout(0.0, name="d1")(inp)
    out = keras.layers.Dense(
        256, use_bias=False, kernel_initializer="identity"
    )(h)
    model = keras.Model(inp, out)
    model.compile(keras.optimizers.SGD(0.0), loss="mse", metrics=[zero_frac])
    history = fit_ones(
        model,
        [C.HyperparameterScheduler({"dropout:d1": S.PerEpoch([0.1, 0.4])})],
        epochs=2,
    )
    np.testing.assert_allclose(
        history.history["zero_frac"], [0.1, 0.4], atol=0.01
    )
    assert history.history["dropout_rate:d1"] == [0.1, 0.4]


@pytest.mark.skipif(BACKEND == "torch", reason="torch runs eagerly")
def test_no_retrace_after_the_first_epoch():
    model, counter = dropout_model(keras.layers.Dropout(0.5))
    rates = {e: (e % 5) / 10 for e in range(6)}

    class Snapshot(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 0:
                self.after_first = counter.count

    snap = Snapshot()
    history = fit_ones(model, [C.DropoutScheduler(rates), snap], epochs=6)
    assert counter.count == snap.after_first
    np.testing.assert_allclose(
        history.history["zero_frac"], [rates[e] for e in range(6)], atol=0.015
    )


def test_scheduled_dropout_layer_saves_and_swaps_with_stock(tmp_path):
    def build(layer):
        m = keras.Sequential(
            [
                keras.Input((8,)),
                keras.layers.Dense(8),
                layer,
                keras.layers.Dense(1),
            ]
        )
        m.compile(keras.optimizers.Adam(1e-3), loss="mse")
        return m

    x = np.random.RandomState(0).normal(size=(32, 8)).astype("float32")
    y = x.sum(axis=1, keepdims=True)
    model = build(L.ScheduledDropout(0.0))
    model.fit(
        x, y, epochs=2, verbose=0, callbacks=[C.DropoutScheduler({1: 0.2})]
    )
    assert model.layers[1].current_rate == pytest.approx(0.2)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded.layers[1], L.ScheduledDropout)
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6
    )
    # Weights are those of a stock model, in both directions.
    stock = build(keras.layers.Dropout(0.5))
    stock.optimizer.build(stock.trainable_variables)
    stock.set_weights(model.get_weights())
    weights = tmp_path / "w.weights.h5"
    stock.save_weights(weights)
    model.load_weights(weights)
    layer = L.ScheduledDropout(0.5)
    layer.set_rate(0.25)
    assert layer.current_rate == 0.25
    with pytest.raises(ValueError, match="rate"):
        L.ScheduledDropout(1.5)
    with pytest.raises(ValueError, match="rate"):
        layer.set_rate(-0.1)


def test_checkpoints_after_scheduling_load_into_plain_models(tmp_path):
    def build():
        m = keras.Sequential(
            [
                keras.Input((8,)),
                keras.layers.Dense(16),
                keras.layers.Dropout(0.0),
                keras.layers.Dense(1),
            ]
        )
        m.compile(keras.optimizers.Adam(1e-3, global_clipnorm=None), loss="mse")
        return m

    x = np.random.RandomState(0).normal(size=(64, 8)).astype("float32")
    y = x.sum(axis=1, keepdims=True)
    model = build()
    path = tmp_path / "ckpt.keras"
    model.fit(
        x,
        y,
        epochs=3,
        verbose=0,
        callbacks=[
            C.DropoutScheduler({0: 0.0, 1: 0.3}),
            C.GradientClipScheduler({0: 1.0, 2: None}),
            keras.callbacks.ModelCheckpoint(str(path)),
        ],
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = keras.saving.load_model(path)
    assert type(loaded.layers[1]) is keras.layers.Dropout
    assert loaded.layers[1].rate == pytest.approx(0.3)
    assert len(loaded.optimizer.variables) == len(model.optimizer.variables)
    for a, b in zip(loaded.optimizer.variables, model.optimizer.variables):
        np.testing.assert_allclose(
            ops.convert_to_numpy(a), ops.convert_to_numpy(b), rtol=1e-6
        )
    # Resuming from it keeps training.
    loaded.fit(x, y, epochs=1, verbose=0)


# ---------------------------------------------------------------------------
# Gradient clipping


def _clip_loss(y_true, y_pred):
    return y_true[:, 0] * y_pred[:, 0]


class UpdateNorm(keras.callbacks.Callback):
    """Per-update weight change (SGD lr 1 and a constant gradient: the
    applied, clipped gradient's norm)."""

    def on_train_begin(self, logs=None):
        self.norms = []

    def on_epoch_begin(self, epoch, logs=None):
        self.w0 = np.array(ops.convert_to_numpy(self.model.layers[-1].kernel))

    def on_epoch_end(self, epoch, logs=None):
        w1 = np.array(ops.convert_to_numpy(self.model.layers[-1].kernel))
        self.norms.append(
            float(np.linalg.norm(w1 - self.w0)) / self.params["steps"]
        )


def clip_run(callback, spe=1, jit="auto", optimizer=None, epochs=3):
    inp = keras.Input((8,))
    out = keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros")(inp)
    model = keras.Model(inp, out)
    model.compile(
        optimizer or keras.optimizers.SGD(1.0),
        loss=_clip_loss,
        steps_per_execution=spe,
        jit_compile=jit,
    )
    norms = UpdateNorm()
    x = np.ones((64, 8), "float32")
    y = np.full((64, 1), 1000.0, "float32")
    history = model.fit(
        x,
        y,
        batch_size=8,
        epochs=epochs,
        verbose=0,
        callbacks=[callback, norms],
    )
    return norms.norms, history


UNCLIPPED = 1000 * math.sqrt(8)


@pytest.mark.parametrize("jit", jit_values())
@pytest.mark.parametrize("spe", spe_values())
def test_clip_switching(spe, jit):
    norms, history = clip_run(
        C.GradientClipScheduler({0: 10.0, 1: None, 2: 5.0}), spe, jit
    )
    np.testing.assert_allclose(norms, [10.0, UNCLIPPED, 5.0], rtol=1e-3)
    assert history.history["gradient_clip"] == [10.0, math.inf, 5.0]


def test_clip_modes_and_per_step_schedule():
    norms, _ = clip_run(
        C.GradientClipScheduler({0: 10.0}, mode="value"), epochs=1
    )
    assert norms[0] == pytest.approx(10.0 * math.sqrt(8), rel=1e-5)
    norms, _ = clip_run(
        C.GradientClipScheduler({0: 10.0}, mode="norm"), epochs=1
    )
    assert norms[0] == pytest.approx(10.0, rel=1e-5)
    norms, _ = clip_run(C.GradientClipScheduler(S.Linear(10.0, 50.0, 24)))
    expected = [10.0 + 40.0 * (8 * e + 3.5) / 24 for e in range(3)]
    np.testing.assert_allclose(norms, expected, rtol=1e-4)


def test_clip_replaces_the_optimizers_own_clipping():
    with pytest.warns(UserWarning, match="own clipping"):
        norms, _ = clip_run(
            C.GradientClipScheduler({0: 7.0}),
            epochs=1,
            optimizer=keras.optimizers.SGD(1.0, clipnorm=1.0),
        )
    assert norms[0] == pytest.approx(7.0, rel=1e-5)


def test_per_epoch_clip_changes_never_retrace():
    class Traces(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.functions = set()

        def on_epoch_begin(self, epoch, logs=None):
            self.functions.add(id(self.model.train_function))

    traces = Traces()
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        norms, _ = clip_run(C.GradientClipScheduler({0: 10.0, 2: 5.0}))
        inp = keras.Input((8,))
        m = keras.Model(inp, keras.layers.Dense(1)(inp))
        m.compile(keras.optimizers.SGD(0.1), loss="mse")
        m.fit(
            np.ones((16, 8)),
            np.ones((16, 1)),
            epochs=4,
            verbose=0,
            callbacks=[
                C.GradientClipScheduler({0: 1.0, 1: 2.0, 2: None}),
                traces,
            ],
        )
    np.testing.assert_allclose(norms, [10.0, 10.0, 5.0], rtol=1e-3)
    assert len(traces.functions) == 1  # one train function for all epochs


# ---------------------------------------------------------------------------
# Optimizer attributes through the one driver


def test_weight_decay_and_beta_2_targets():
    inp = keras.Input((4,))
    out = keras.layers.Dense(1, use_bias=False, kernel_initializer="ones")(inp)
    model = keras.Model(inp, out)

    def zero_loss(y_true, y_pred):  # zero gradients: only decay moves w
        return 0.0 * ops.sum(y_pred, axis=-1)

    model.compile(keras.optimizers.SGD(0.1), loss=zero_loss)
    x = np.ones((32, 4), "float32")
    history = model.fit(
        x,
        np.zeros((32, 1)),
        batch_size=8,
        epochs=2,
        verbose=0,
        callbacks=[
            C.HyperparameterScheduler({"weight_decay": S.PerEpoch([0.5, 0.0])})
        ],
    )
    w = float(ops.convert_to_numpy(model.layers[-1].kernel)[0, 0])
    # 4 updates of w *= (1 - lr * wd) at wd 0.5, then 4 at wd 0.
    assert w == pytest.approx((1 - 0.1 * 0.5) ** 4, rel=1e-6)
    assert history.history["weight_decay"] == [0.5, 0.0]
    model.compile(keras.optimizers.Adam(0.1), loss="mse")
    model.fit(
        x,
        np.zeros((32, 1)),
        epochs=1,
        batch_size=8,
        verbose=0,
        callbacks=[
            C.HyperparameterScheduler({"beta_2": S.Linear(0.9, 0.99, 4)})
        ],
    )
    assert model.optimizer.beta_2 == pytest.approx(0.99)


CALLBACKS = [
    lambda: C.DropoutScheduler({0: 0.0, 3: 0.3}, layers=["a", "b"]),
    lambda: C.DropoutScheduler(S.Linear(0.0, 0.5, 100)),
    lambda: C.DropoutScheduler(0.2),
    lambda: C.GradientClipScheduler({0: 10.0, 5: None}, mode="norm"),
    lambda: C.GradientClipScheduler(S.Cosine(10.0, 1.0, 1000)),
]


@pytest.mark.parametrize("i", range(len(CALLBACKS)))
def test_config_and_deepcopy(i):
    cb = CALLBACKS[i]()
    cfg = cb.get_config()
    back = type(cb).from_config(cfg)
    assert back.get_config() == cfg
    ser = keras.saving.serialize_keras_object(cb)
    assert keras.saving.deserialize_keras_object(ser).get_config() == cfg
    assert copy.deepcopy(cb).get_config() == cfg


@keras.saving.register_keras_serializable(package="tests")
def halve_each_epoch(epoch):
    return 0.5**epoch


def test_callable_schedules():
    cb = C.DropoutScheduler(halve_each_epoch)
    assert type(cb).from_config(cb.get_config()).schedule.value_at(3) == 0.125
    clip = C.GradientClipScheduler(lambda e: None if e >= 2 else 10.0)
    assert clip.schedule.value_at(1) == 10.0
    assert clip.schedule.value_at(2) == math.inf
    with pytest.raises(ValueError, match="values"):
        clip.get_config()


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: C.DropoutScheduler({0: 1.5}), "in \\[0, 1\\)"),
        (lambda: C.DropoutScheduler({0: None}), "in \\[0, 1\\)"),
        (lambda: C.DropoutScheduler("half"), "schedule"),
        (lambda: C.DropoutScheduler({0: 0.1}, layers="d1"), "layers"),
        (lambda: C.GradientClipScheduler({0: 0.0}), "schedule\\[0\\]"),
        (lambda: C.GradientClipScheduler({0: 1.0}, mode="l1"), "mode"),
        (lambda: C.HyperparameterScheduler({"dropout:": 0.1}), "Unknown"),
    ],
)
def test_invalid_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()
