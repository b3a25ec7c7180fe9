"""The ``"weight_noise"`` targets: the kernel a training forward pass sees
is the stored one plus N(0, sigma^2) noise of the scheduled sigma (KS
test, per-epoch and per-step schedules), fresh each step, never written
to the weights, off at inference, recurrent kernels included, no retrace,
the model stock after `fit` (also after an exception), errors."""

import keras
import numpy as np
import pytest
from scipy import stats

from keras_trainplus import schedules as S
from keras_trainplus.callbacks import HyperparameterScheduler
from keras_trainplus.knobs.weight_noise import noisy_layers

BACKEND = keras.backend.backend()
N_IN, N_OUT = 32, 48


class Recorder(keras.layers.Layer):
    """Keeps what the last training call received; counts traced calls."""

    def __init__(self, shape, **kwargs):
        super().__init__(**kwargs)
        self.seen = self.add_weight(
            shape=shape, initializer="zeros", trainable=False, name="seen"
        )
        self.traced = 0

    def call(self, x, training=None):
        if training:
            self.traced += 1
            self.seen.assign(x)
        return x


def identity_model():
    """Rows of the identity through Dense: the output is the kernel used."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((N_IN,))
    dense = keras.layers.Dense(N_OUT, use_bias=False, name="d")
    recorder = Recorder((N_IN, N_OUT), name="rec")
    model = keras.Model(inputs, recorder(dense(inputs)))
    model.compile(keras.optimizers.SGD(0.0), "mse")
    return model


class Snapshots(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.seen, self.logged = [], []

    def on_epoch_end(self, epoch, logs=None):
        rec = self.model.get_layer("rec")
        self.seen.append(keras.ops.convert_to_numpy(rec.seen.value).copy())
        self.logged.append(logs.get("weight_noise:d"))


def fit_noise(schedule, epochs, **fit_kwargs):
    model = identity_model()
    stored = keras.ops.convert_to_numpy(model.get_layer("d").kernel).copy()
    snaps = Snapshots()
    driver = HyperparameterScheduler(
        {"weight_noise:d": schedule},
        options={"weight_noise:d": {"seed": 3}},
    )
    x = np.eye(N_IN, dtype="float32")
    y = np.zeros((N_IN, N_OUT), "float32")
    model.fit(
        x, y, batch_size=N_IN, epochs=epochs, callbacks=[driver, snaps],
        verbose=0, shuffle=False, **fit_kwargs,
    )  # fmt: skip
    return model, stored, snaps


def test_forward_kernel_is_stored_plus_noise_of_the_scheduled_std():
    sigmas = {0: 0.05, 1: 0.2, 2: 0.0}
    model, stored, snaps = fit_noise(S.PerEpoch(sigmas), epochs=3)
    after = keras.ops.convert_to_numpy(model.get_layer("d").kernel)
    np.testing.assert_array_equal(after, stored)  # never written back
    assert snaps.logged == [0.05, 0.2, 0.0]
    for epoch, sigma in sigmas.items():
        noise = (snaps.seen[epoch] - stored).ravel()
        if sigma == 0:
            np.testing.assert_allclose(noise, 0.0, atol=1e-7)
            continue
        assert stats.kstest(noise / sigma, "norm").pvalue > 1e-3
        assert abs(noise.std() / sigma - 1) < 0.1
    # a fresh draw per step: the two noisy epochs are uncorrelated
    first = snaps.seen[0] - stored
    second = snaps.seen[1] - stored
    assert abs(np.corrcoef(first.ravel(), second.ravel())[0, 1]) < 0.1


def test_per_step_schedule_reaches_each_step():
    # one step per epoch: step e gets 0.1 + 0.1 * e
    model, stored, snaps = fit_noise(S.Linear(0.1, 0.4, 3), epochs=4)
    for step in range(4):
        noise = (snaps.seen[step] - stored).ravel()
        sigma = 0.1 + 0.1 * step
        assert stats.kstest(noise / sigma, "norm").pvalue > 1e-3


def test_off_at_inference_and_in_validation():
    model, stored, snaps = fit_noise(
        1.0,
        epochs=2,
        validation_data=(
            np.eye(N_IN, dtype="float32"),
            np.zeros((N_IN, N_OUT)),
        ),
    )
    history = model.history.history
    clean = float(np.mean(stored**2))
    np.testing.assert_allclose(history["val_loss"], clean, rtol=1e-5)
    assert history["loss"][0] > 1.5 * clean  # the noisy training loss
    out = model.predict(np.eye(N_IN, dtype="float32"), verbose=0)
    np.testing.assert_allclose(out, stored, rtol=1e-6)


def test_recurrent_kernels_get_noise():
    keras.utils.set_random_seed(1)
    inputs = keras.Input((4, 3))
    lstm = keras.layers.LSTM(5, return_sequences=True, name="lstm")
    rec = Recorder((8, 4, 5), name="rec")
    model = keras.Model(inputs, rec(lstm(inputs)))
    model.compile(keras.optimizers.SGD(0.0), "mse")
    assert noisy_layers(model) == [lstm]  # the LSTM, not its cell
    lstm.cell.bias.assign(np.ones(20, "float32"))
    # zero inputs: only the recurrent kernel can change the outputs
    x = np.zeros((8, 4, 3), "float32")
    clean = keras.ops.convert_to_numpy(model.predict(x, verbose=0))
    driver = HyperparameterScheduler({"weight_noise": 0.5})
    model.fit(
        x,
        np.zeros((8, 4, 5)),
        epochs=1,
        batch_size=8,
        callbacks=[driver],
        verbose=0,
    )
    seen = keras.ops.convert_to_numpy(rec.seen.value)
    np.testing.assert_allclose(seen[:, 0], clean[:, 0], rtol=1e-5)
    assert np.abs(seen[:, 1:] - clean[:, 1:]).max() > 1e-2
    # the same draw for the whole sequence (one draw per call)
    assert np.allclose(seen[0], seen[1], atol=1e-6)


def test_all_layers_with_kernels_and_nested_models():
    inner_in = keras.Input((4,))
    inner = keras.Model(
        inner_in, keras.layers.Dense(4, name="fc")(inner_in), name="tower"
    )
    inputs = keras.Input((4,))
    h = keras.layers.Dropout(0.1)(inner(inputs))
    conv = keras.layers.Reshape((4, 1))(h)
    conv = keras.layers.Conv1D(2, 2, name="conv")(conv)
    model = keras.Model(
        inputs, keras.layers.Dense(1, name="head")(keras.layers.Flatten()(conv))
    )
    names = [layer.name for layer in noisy_layers(model)]
    assert sorted(names) == ["conv", "fc", "head"]
    assert [x.name for x in noisy_layers(model, ["tower/fc"])] == ["fc"]


def _traced_counts(schedule):
    model, _, _ = fit_noise(schedule, epochs=3)
    return model.get_layer("rec").traced


@pytest.mark.skipif(BACKEND == "torch", reason="torch runs eagerly")
def test_no_retrace_when_the_std_changes():
    assert _traced_counts(
        S.PerEpoch({0: 0.1, 1: 0.5, 2: 0.2})
    ) == _traced_counts(0.1)


def test_model_is_stock_after_fit_and_after_an_exception():
    model = identity_model()
    dense = model.get_layer("d")
    before = len(dense.variables)

    class Boom(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            raise RuntimeError("boom")

    for extra in ([], [Boom()]):
        driver = HyperparameterScheduler({"weight_noise": 0.1})
        x = np.eye(N_IN, dtype="float32")
        try:
            model.fit(
                x,
                x[:, :1].repeat(N_OUT, 1),
                epochs=1,
                callbacks=[driver, *extra],
                verbose=0,
            )
        except RuntimeError:
            assert extra
        assert "call" not in vars(dense)
        assert len(dense.variables) == before


@pytest.mark.parametrize(
    "schedules, options, match",
    [
        ({"weight_noise:nope": 0.1}, None, "nope"),
        ({"weight_noise:rec": 0.1}, None, "no kernel"),
        ({"weight_noise": -0.1}, None, r"schedules\['weight_noise'\]"),
        (
            {"weight_noise:d": S.PerEpoch({0: 0.1, 2: -1.0})},
            None,
            r"weight_noise:d",
        ),
        ({"weight_noise": 0.1}, {"weight_noise": {"seed": "x"}}, "seed"),
        ({"weight_noise": 0.1}, {"weight_noise": {"mode": 1}}, "mode"),
    ],
)
def test_errors_name_the_argument(schedules, options, match):
    model = identity_model()
    x = np.eye(N_IN, dtype="float32")
    with pytest.raises((ValueError, TypeError), match=match):
        driver = HyperparameterScheduler(schedules, options=options)
        model.fit(
            x, np.zeros((N_IN, N_OUT)), epochs=1, callbacks=[driver], verbose=0
        )


def test_preset_drives_the_target_and_round_trips():
    from keras_trainplus.callbacks import WeightNoise

    preset = WeightNoise(S.PerEpoch({0: 0.0, 1: 0.3}), layers=["d"], seed=4)
    clone = WeightNoise.from_config(preset.get_config())
    assert clone.get_config() == preset.get_config()
    model = identity_model()
    stored = keras.ops.convert_to_numpy(model.get_layer("d").kernel).copy()
    snaps = Snapshots()
    x = np.eye(N_IN, dtype="float32")
    history = model.fit(
        x, np.zeros((N_IN, N_OUT)), batch_size=N_IN, epochs=2,
        callbacks=[clone, snaps], verbose=0, shuffle=False,
    )  # fmt: skip
    assert history.history["weight_noise"] == [0.0, 0.3]
    np.testing.assert_allclose(snaps.seen[0], stored, atol=1e-7)
    noise = (snaps.seen[1] - stored).ravel() / 0.3
    assert stats.kstest(noise, "norm").pvalue > 1e-3
    for bad, match in (
        ({"stddev": -1.0}, "stddev"),
        ({"stddev": {0: 0.1, 3: -0.5}}, r"stddev\[3\]"),
        ({"layers": "d"}, "layers"),
        ({"seed": 0.5}, "seed"),
    ):
        with pytest.raises((ValueError, TypeError), match=match):
            WeightNoise(**bad)
    with pytest.raises(ValueError, match=r"stddev\(0\)"):
        model.fit(
            x, np.zeros((N_IN, N_OUT)), epochs=1, verbose=0,
            callbacks=[WeightNoise(lambda epoch: -1.0)],
        )  # fmt: skip


class Subclassed(keras.Model):
    """A subclassed model whose `call` does not hand `training` on (JAX's
    train step calls it without a layer call, so no layer sees a flag)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.d1 = keras.layers.Dense(8, name="d1")
        self.d2 = keras.layers.Dense(1, name="d2")

    def call(self, x, training=None):
        return self.d2(self.d1(x))


def test_subclassed_model_gets_noise_in_training_only():
    keras.utils.set_random_seed(0)
    model = Subclassed()
    model.compile(keras.optimizers.SGD(0.0), "mse")
    x = np.random.default_rng(0).normal(size=(16, 4)).astype("float32")
    y = np.zeros((16, 1), "float32")
    model(x[:1])  # builds the layers
    clean = model.evaluate(x, y, verbose=0)
    history = model.fit(
        x, y, epochs=1, batch_size=16, verbose=0, shuffle=False,
        callbacks=[HyperparameterScheduler({"weight_noise": 3.0})],
    )  # fmt: skip
    assert history.history["loss"][0] > 20 * clean
    assert model.evaluate(x, y, verbose=0) == pytest.approx(clean, rel=1e-6)
