"""LR finder: exact range per update (any steps_per_execution), raw
per-update losses, stops, suggestions, and a model left exactly as it was."""

import copy
import math

import keras
import numpy as np
import pytest
from helpers import BACKEND
from helpers import fit_probe
from helpers import probe_model
from helpers import relative_error
from helpers import sgd_applied_lrs
from helpers import spe_values
from keras import ops

import keras_trainplus as ktp
from keras_trainplus.callbacks import LRFinder
from keras_trainplus.callbacks.lr_finder import _suggestions


def _state(model):
    values = {}
    for group, variables in (
        ("model", model.variables),
        ("optimizer", model.optimizer.variables),
        ("metrics", model.metrics_variables),
    ):
        for i, v in enumerate(variables):
            values[(group, i, v.path)] = np.array(ops.convert_to_numpy(v))
    return values


def _classifier(spe=1, optimizer=None, seed=0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((16,)),
            keras.layers.Dense(32, activation="relu"),
            keras.layers.Dropout(0.3),
            keras.layers.Dense(4),
        ]
    )
    model.compile(
        optimizer or keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        steps_per_execution=spe,
    )
    return model


def _data(n=256):
    rng = np.random.RandomState(0)
    x = rng.normal(size=(n, 16)).astype("float32")
    y = (x[:, :4].argmax(axis=1)).astype("int32")
    return x, y


@pytest.mark.parametrize("spe", spe_values())
def test_model_is_restored_bitwise_and_training_continues_identically(spe):
    x, y = _data()
    model = _classifier(spe)
    model.fit(x, y, batch_size=32, epochs=1, verbose=0)  # Adam slots set
    before = _state(model)
    result = ktp.find_lr(model, x, y, batch_size=32, num_steps=24, verbose=0)
    assert len(result.losses) == 24
    after = _state(model)
    assert before.keys() == after.keys()
    for key in before:
        np.testing.assert_array_equal(after[key], before[key], err_msg=key)
    model.fit(x, y, batch_size=32, epochs=2, verbose=0, shuffle=True)

    twin = _classifier(spe)
    twin.fit(x, y, batch_size=32, epochs=1, verbose=0)
    twin.fit(x, y, batch_size=32, epochs=2, verbose=0, shuffle=True)
    for a, b in zip(model.get_weights(), twin.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("opt", ["sgd", "adam"])
def test_never_trained_model_diverging_test_then_identical_training(opt):
    """A fresh model's optimizer has no slots yet: the finder builds it in
    its initial state first, so the slots a diverging test fills are
    restored too (regression: momentum left from the divergence ruined
    the next fit)."""
    x, y = _data()

    def make():
        return _classifier(
            optimizer=keras.optimizers.SGD(0.01, momentum=0.9)
            if opt == "sgd"
            else keras.optimizers.Adam(1e-3)
        )

    model = make()
    result = ktp.find_lr(
        model,
        x,
        y,
        batch_size=32,
        start_lr=1e-4,
        end_lr=100.0,
        num_steps=40,
        verbose=0,
    )
    assert result.stop_reason in ("diverged", "non-finite loss")
    model.fit(x, y, batch_size=32, epochs=2, verbose=0, shuffle=True)
    twin = make()
    twin.fit(x, y, batch_size=32, epochs=2, verbose=0, shuffle=True)
    for a, b in zip(
        model.get_weights() + [np.array(v) for v in model.optimizer.variables],
        twin.get_weights() + [np.array(v) for v in twin.optimizer.variables],
    ):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("spe", spe_values())
def test_learning_rate_is_exactly_the_range(spe):
    n = 40
    model = probe_model(n, keras.optimizers.SGD(0.5), steps_per_execution=spe)
    finder = LRFinder(1e-4, 1.0, num_steps=n, restore=False)
    fit_probe(model, n, [finder])
    expected = 1e-4 * (1.0 / 1e-4) ** (np.arange(n) / (n - 1))
    assert relative_error(sgd_applied_lrs(model), expected) < 1e-6
    np.testing.assert_allclose(finder.result.lrs, expected, rtol=1e-12)
    linear = LRFinder(0.1, 0.5, num_steps=n, mode="linear", restore=False)
    model = probe_model(n, keras.optimizers.SGD(0.5), steps_per_execution=spe)
    fit_probe(model, n, [linear])
    np.testing.assert_allclose(
        sgd_applied_lrs(model), np.linspace(0.1, 0.5, n), rtol=1e-6
    )


def test_optimizer_with_its_own_schedule_runs_the_range_and_gets_it_back():
    """The range replaces the optimizer's schedule while the test runs;
    afterwards the optimizer uses its own schedule again, and without
    `restore` the weights keep the test's updates."""
    n = 20
    own = keras.optimizers.schedules.ExponentialDecay(0.5, 10, 0.5)
    model = probe_model(n, keras.optimizers.SGD(own))
    finder = LRFinder(1e-3, 1.0, num_steps=n, restore=False)
    fit_probe(model, n, [finder])
    expected = 1e-3 * (1.0 / 1e-3) ** (np.arange(n) / (n - 1))
    assert relative_error(sgd_applied_lrs(model), expected) < 1e-6
    assert model.optimizer._learning_rate is own
    before = sgd_applied_lrs(model)
    fit_probe(model, n, [])  # stock again: its own decayed schedule
    step = np.arange(n, 2 * n)  # iterations continue
    assert (
        relative_error(
            sgd_applied_lrs(model) - before, 0.5 * 0.5 ** (step / 10)
        )
        < 1e-5
    )


@pytest.mark.parametrize("spe", spe_values())
def test_recorded_losses_are_per_update_not_a_running_mean(spe):
    """A frozen model (LRs around 1e-12) whose batches alternate between
    losses 1 and 9: the recorded curve alternates."""
    inp = keras.Input((1,))
    model = keras.Model(
        inp,
        keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros")(inp),
    )
    model.compile(
        keras.optimizers.SGD(1.0), loss="mse", steps_per_execution=spe
    )
    n = 32
    x = np.ones((n * 4, 1), "float32")
    y = np.repeat(np.tile([1.0, 3.0], n // 2), 4)[:, None].astype("float32")
    # No divergence stop: a jump from 1 to 9 is 5x the best loss.
    result = ktp.find_lr(
        model,
        x,
        y,
        batch_size=4,
        start_lr=1e-13,
        end_lr=1e-12,
        num_steps=n,
        shuffle=False,
        divergence_threshold=None,
        verbose=0,
    )
    np.testing.assert_allclose(
        result.losses, np.tile([1.0, 9.0], n // 2), rtol=1e-5
    )
    # The smoothed curve is a proper (bias-corrected) EMA of them.
    assert result.smoothed_losses[0] == pytest.approx(1.0)
    np.testing.assert_allclose(
        result.smoothed_losses, _suggestions.smooth(result.losses, 0.98)
    )


def test_stops_on_divergence_and_keeps_a_usable_result():
    x, y = _data()
    model = _classifier(optimizer=keras.optimizers.SGD(0.01))
    result = ktp.find_lr(
        model,
        x,
        y,
        batch_size=16,
        start_lr=1e-4,
        end_lr=1e4,
        num_steps=200,
        verbose=0,
    )
    assert result.stop_reason in ("diverged", "non-finite loss")
    assert 5 < len(result.losses) < 200
    for method, lr in result.suggestions().items():
        assert math.isfinite(lr) and 1e-4 <= lr <= result.lrs[-1], method


def test_stops_on_a_non_finite_loss():
    inp = keras.Input((2,))
    model = keras.Model(inp, keras.layers.Dense(1)(inp))
    model.compile(keras.optimizers.SGD(0.1), loss="mse")
    x = np.ones((64, 2), "float32")
    x[40:44] = np.nan  # batch 10 (batch size 4) yields a NaN loss
    y = np.ones((64, 1), "float32")
    result = ktp.find_lr(
        model,
        x,
        y,
        batch_size=4,
        start_lr=1e-5,
        end_lr=1e-3,
        num_steps=16,
        shuffle=False,
        verbose=0,
    )
    assert result.stop_reason == "non-finite loss"
    assert len(result.losses) == 11 and math.isnan(result.losses[-1])
    assert all(np.isfinite(model.get_weights()[0].ravel()))  # restored
    assert math.isfinite(result.suggestion())


@pytest.mark.parametrize("seed", range(40))
def test_suggestions_are_always_finite_and_in_range(seed):
    rng = np.random.RandomState(seed)
    n = rng.randint(1, 120)
    lrs = np.geomspace(10 ** rng.uniform(-8, -3), 10 ** rng.uniform(-2, 1), n)
    kind = seed % 5
    if kind == 0:
        losses = rng.normal(size=n)
    elif kind == 1:
        losses = np.full(n, 2.0)
    elif kind == 2:
        losses = np.linspace(3.0, 1.0, n) + 0.05 * rng.normal(size=n)
    elif kind == 3:
        losses = np.concatenate(
            [np.linspace(2, 1, n // 2 + 1), np.full(n - n // 2 - 1, np.nan)]
        )
    else:
        losses = -np.exp(rng.normal(size=n))  # negative losses
    result = ktp.LRFinderResult(lrs, losses)
    for method, lr in result.suggestions().items():
        assert math.isfinite(lr), (method, lr)
        assert lrs.min() <= lr <= lrs.max(), (method, lr)


def test_suggestion_methods_on_a_known_curve():
    lrs = np.geomspace(1e-5, 1.0, 100)
    u = np.log10(lrs)
    losses = (
        2.0 - np.tanh(2 * (u + 2.5)) + np.where(u > -1, 20 * (u + 1) ** 2, 0)
    )
    result = ktp.LRFinderResult(lrs, losses, smoothing=0.0)
    assert result.suggestion("steep") == pytest.approx(10**-2.5, rel=0.3)
    assert 10**-3.5 < result.suggestion("valley") < 10**-1
    assert result.suggestion("minimum") == pytest.approx(
        lrs[np.argmin(losses)] / 10
    )
    with pytest.raises(ValueError, match="method"):
        result.suggestion("best")


def test_inputs_like_fit():
    x, y = _data(128)

    def generator():
        while True:
            for i in range(0, 128, 16):
                yield x[i : i + 16], y[i : i + 16]

    class Data(keras.utils.PyDataset):
        def __len__(self):
            return 8

        def __getitem__(self, i):
            return x[16 * i : 16 * i + 16], y[16 * i : 16 * i + 16]

    inputs = [dict(x=generator(), steps_per_epoch=8), dict(x=Data())]
    if BACKEND == "tensorflow":
        import tensorflow as tf

        inputs.append(
            dict(x=tf.data.Dataset.from_tensor_slices((x, y)).batch(16))
        )
    for kwargs in inputs:
        model = _classifier()
        result = ktp.find_lr(model, num_steps=20, verbose=0, **kwargs)
        assert len(result.losses) == 20, kwargs


def test_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    lrs = np.geomspace(1e-6, 1.0, 60)
    result = ktp.LRFinderResult(lrs, (np.log10(lrs) + 3) ** 2 + 1)
    path = tmp_path / "curve.png"
    fig = result.plot(path)
    assert path.stat().st_size > 10_000
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(fig.axes) == 1


def test_config_deepcopy_and_errors():
    finder = LRFinder(
        1e-6,
        1.0,
        num_steps=50,
        mode="linear",
        smoothing=0.9,
        divergence_threshold=None,
    )
    assert (
        LRFinder.from_config(finder.get_config()).get_config()
        == finder.get_config()
    )
    assert copy.deepcopy(finder).get_config() == finder.get_config()
    ser = keras.saving.serialize_keras_object(finder)
    assert keras.saving.deserialize_keras_object(ser).num_steps == 50
    for kwargs, match in [
        (dict(start_lr=0.0), "start_lr"),
        (dict(end_lr=1e-8), "end_lr"),
        (dict(num_steps=1), "num_steps"),
        (dict(mode="log"), "mode"),
        (dict(smoothing=1.0), "smoothing"),
        (dict(divergence_threshold=1.0), "divergence_threshold"),
    ]:
        with pytest.raises(ValueError, match=match):
            LRFinder(**kwargs)
    model = _classifier()
    with pytest.raises(ValueError, match="validation_data"):
        ktp.find_lr(model, *_data(), validation_data=_data())
