"""`GradientNoise` and the driver target ``"gradient_noise"``: the noise the
update actually applies has standard deviation sigma_t at every step (KS
test), mean 0, no correlation across steps or variables; it is added after
clipping and after accumulation; seeded runs reproduce; a resumed run
continues the annealing; the optimizer is stock afterwards."""

import copy
import math

import keras
import numpy as np
import pytest
from keras import ops
from scipy import stats

from keras_trainplus import callbacks as C
from keras_trainplus import schedules as S
from tests.helpers import jit_values

IN, OUT, STEPS = 40, 50, 12


def _mean_output(y_true, y_pred):
    # The gradient w.r.t. the kernel is the mean input, whatever the weights.
    return ops.mean(y_pred)


def _model(lr=1.0, spe=1, jit_compile="auto", **optimizer_kwargs):
    keras.utils.set_random_seed(2)
    model = keras.Sequential([keras.Input((IN,)), keras.layers.Dense(OUT)])
    model.compile(
        keras.optimizers.SGD(lr, **optimizer_kwargs),
        loss=_mean_output,
        steps_per_execution=spe,
        jit_compile=jit_compile,
    )
    return model


def _data(samples=STEPS * 4):
    rng = np.random.default_rng(0)
    return (
        rng.normal(size=(samples, IN)).astype("float32"),
        np.zeros((samples, OUT), "float32"),
    )


class Record(keras.callbacks.Callback):
    """All weights, flattened, after every batch (steps_per_execution 1)."""

    def on_train_begin(self, logs=None):
        self.weights = [self._flat()]

    def on_train_batch_end(self, batch, logs=None):
        self.weights.append(self._flat())

    def _flat(self):
        return np.concatenate([w.ravel() for w in self.model.get_weights()])


def _applied_noise(noise, common=list, batch_size=4, lr=1.0, **kw):
    """Per update: (noisy update) - (noise-free update), divided by -lr.
    `noise` and `common` make the callbacks of the noisy run and of both."""
    x, y = _data()
    runs = []
    for extra in (noise, list):
        record = Record()
        model = _model(lr=lr, **kw)
        model.fit(
            x,
            y,
            batch_size=batch_size,
            epochs=1,
            shuffle=False,
            verbose=0,
            callbacks=extra() + common() + [record],
        )
        runs.append(np.diff(np.array(record.weights), axis=0))
    return (runs[0] - runs[1]) / -lr


def _sigma(eta, gamma, t):
    return math.sqrt(eta / (1 + t) ** gamma)


def assert_gaussian(noise, sigmas):
    """Each row has standard deviation sigmas[t] (within 6 standard errors)
    and mean 0 (within 5), and all rows scaled by their sigma are N(0, 1)
    together (KS test; one test, so no correction for many steps)."""
    scaled = []
    for t, (n, sigma) in enumerate(zip(noise, sigmas)):
        size = n.size
        assert abs(n.std() / sigma - 1) < 6 / math.sqrt(2 * size), t
        assert abs(n.mean()) < 5 * sigma / math.sqrt(size), t
        scaled.append(n / sigma)
    assert stats.kstest(np.concatenate(scaled), "norm").pvalue > 1e-4


@pytest.mark.parametrize("jit_compile", jit_values())
def test_applied_noise_has_sigma_t_mean_0_and_no_correlation(jit_compile):
    """Both samplers: the backend's (no XLA) and the counter hash (XLA)."""
    eta, gamma = 0.5, 0.55
    noise = _applied_noise(
        lambda: [C.GradientNoise(eta, gamma, seed=7)], jit_compile=jit_compile
    )
    assert noise.shape == (STEPS, IN * OUT + OUT)
    assert_gaussian(noise, [_sigma(eta, gamma, t) for t in range(STEPS)])
    # across steps and across variables (kernel vs bias)
    scaled = (
        noise / np.array([_sigma(eta, gamma, t) for t in range(STEPS)])[:, None]
    )
    limit = 5 / math.sqrt(scaled.shape[1])
    for t in range(STEPS - 1):
        assert abs(np.corrcoef(scaled[t], scaled[t + 1])[0, 1]) < limit
    kernel, bias = scaled[:, :OUT], scaled[:, IN * OUT :]
    r = np.corrcoef(kernel.ravel(), bias.ravel())[0, 1]
    assert abs(r) < 5 / math.sqrt(kernel.size)


def test_noise_goes_after_clipping():
    """A clip at a tiny threshold shrinks the gradient, not the noise."""
    eta = 0.2
    noise = _applied_noise(
        lambda: [C.GradientNoise(eta, gamma=0.0, seed=1)],
        common=lambda: [C.GradientClipScheduler({0: 1e-6})],
    )
    assert_gaussian(noise, [math.sqrt(eta)] * len(noise))


def test_noise_goes_after_accumulation_once_per_update():
    eta = 0.3
    x, y = _data()
    record = Record()
    model = _model()
    model.fit(
        x,
        y,
        batch_size=2,
        epochs=1,
        shuffle=False,
        verbose=0,
        callbacks=[
            C.GradientNoise(eta, gamma=0.55, seed=3),
            C.GradientAccumulationScheduler({0: 2}),
            record,
        ],
    )
    plain = Record()
    reference = _model()
    reference.fit(
        x,
        y,
        batch_size=4,
        epochs=1,
        shuffle=False,
        verbose=0,
        callbacks=[plain],
    )
    noisy = np.diff(np.array(record.weights), axis=0)[1::2]  # update rows
    clean = np.diff(np.array(plain.weights), axis=0)
    noise = -(noisy - clean)
    assert int(model.optimizer.iterations) == STEPS
    assert_gaussian(noise, [_sigma(eta, 0.55, t) for t in range(STEPS)])


def test_seeded_runs_reproduce_and_seeds_differ():
    a = _applied_noise(lambda: [C.GradientNoise(0.1, seed=5)])
    b = _applied_noise(lambda: [C.GradientNoise(0.1, seed=5)])
    c = _applied_noise(lambda: [C.GradientNoise(0.1, seed=6)])
    np.testing.assert_array_equal(a, b)
    assert abs(np.corrcoef(a.ravel(), c.ravel())[0, 1]) < 0.05


def test_resumed_run_continues_the_annealing():
    eta, gamma = 0.5, 0.55
    x, y = _data()
    model = _model()
    first = model.fit(
        x,
        y,
        batch_size=4,
        epochs=1,
        verbose=0,
        callbacks=[C.GradientNoise(eta, gamma, seed=0)],
    )
    second = model.fit(
        x,
        y,
        batch_size=4,
        epochs=2,
        initial_epoch=1,
        verbose=0,
        callbacks=[C.GradientNoise(eta, gamma, seed=0)],
    )
    assert first.history["gradient_noise"] == [
        pytest.approx(_sigma(eta, gamma, STEPS - 1), rel=1e-6)
    ]
    assert second.history["gradient_noise"] == [
        pytest.approx(_sigma(eta, gamma, 2 * STEPS - 1), rel=1e-6)
    ]
    assert type(second.history["gradient_noise"][0]) is float


def test_driver_target_is_the_standard_deviation():
    """RETURNN's constant `gradient_noise`: {"gradient_noise": 0.1}."""
    noise = _applied_noise(
        lambda: [
            C.HyperparameterScheduler(
                {"gradient_noise": 0.1},
                options={"gradient_noise": {"seed": 2}},
            )
        ]
    )
    assert_gaussian(noise, [0.1] * len(noise))
    zero = _applied_noise(
        lambda: [C.HyperparameterScheduler({"gradient_noise": 0.0})]
    )
    np.testing.assert_allclose(zero, 0.0, atol=1e-6)


def test_optimizer_is_stock_after_fit_and_after_an_exception():
    x, y = _data()
    model = _model(clipvalue=10.0)
    model.fit(x[:4], y[:4], batch_size=4, epochs=1, verbose=0)
    attributes = set(vars(model.optimizer))

    class Boom(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 3:
                raise RuntimeError("boom")

    for extra in ([], [Boom()]):
        try:
            model.fit(
                x,
                y,
                batch_size=4,
                epochs=1,
                verbose=0,
                callbacks=[C.GradientNoise(0.1, seed=0)] + extra,
            )
        except RuntimeError:
            assert extra
        assert set(vars(model.optimizer)) == attributes
    before = model.get_weights()
    model.fit(x[:4], y[:4], batch_size=4, epochs=1, verbose=0)
    # a plain SGD step of the linear loss: exactly -lr * mean input
    expected = -x[:4].mean(axis=0)
    np.testing.assert_allclose(
        model.get_weights()[0] - before[0],
        np.repeat(expected[:, None], OUT, axis=1) / OUT,
        rtol=1e-4,
        atol=1e-6,
    )


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"eta": 0}, "eta"),
        ({"eta": -1.0}, "eta"),
        ({"eta": math.nan}, "eta"),
        ({"gamma": -0.1}, "gamma"),
        ({"gamma": math.inf}, "gamma"),
        ({"seed": 1.5}, "seed"),
        ({"eta": "0.1"}, "eta"),
    ],
)
def test_bad_arguments(kwargs, name):
    with pytest.raises((ValueError, TypeError), match=name):
        C.GradientNoise(**kwargs)


def test_negative_target_value_is_an_error():
    x, y = _data()
    model = _model()
    with pytest.raises(ValueError, match="gradient_noise"):
        model.fit(
            x,
            y,
            batch_size=4,
            epochs=1,
            verbose=0,
            callbacks=[
                C.HyperparameterScheduler(
                    {"gradient_noise": S.Linear(0.1, -1, 4)}
                )
            ],
        )


def test_config_round_trip_and_deepcopy():
    callback = C.GradientNoise(0.3, 0.5, seed=4)
    config = callback.get_config()
    assert C.GradientNoise.from_config(config).get_config() == config
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(callback)
    )
    assert restored.get_config() == config
    assert copy.deepcopy(callback).get_config() == config
    schedule = S.AnnealedNoise(0.3, 0.5)
    assert S.AnnealedNoise.from_config(schedule.get_config()) == schedule


def test_same_noise_at_any_steps_per_execution():
    from tests.helpers import spe_values

    x, y = _data()
    finals = []
    for spe in spe_values():
        model = _model(spe=spe)
        model.fit(
            x,
            y,
            batch_size=4,
            epochs=2,
            shuffle=False,
            verbose=0,
            callbacks=[C.GradientNoise(0.2, seed=9)],
        )
        finals.append(np.concatenate([w.ravel() for w in model.get_weights()]))
    for other in finals[1:]:
        np.testing.assert_allclose(other, finals[0], rtol=1e-6, atol=1e-7)


def test_plot_history_shows_both_by_default():
    from keras_trainplus.plotting import _history_keys

    logs = {
        "loss": [1.0, 0.5],
        "accuracy": [0.1, 0.2],
        "gradient_noise": [0.1, 0.05],
        "gradient_accumulation": [1.0, 2.0],
    }
    keys = _history_keys(logs, None)
    assert "gradient_noise" in keys and "gradient_accumulation" in keys
    assert "accuracy" not in keys
