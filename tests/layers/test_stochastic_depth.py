"""`StochasticDepth`: per-example drops at `rate` (statistical bounds),
kept branches scaled by 1/(1-rate) exactly, the plain sum at inference,
`rate` driven as a knob in a compiled `fit`, serialization, errors; and
`stochastic_depth_rates` (Huang et al.'s linear decay)."""

import keras
import numpy as np
import pytest
from keras import ops

import keras_trainplus as ktp
from keras_trainplus import schedules as S
from keras_trainplus.layers import StochasticDepth
from keras_trainplus.layers import stochastic_depth_rates
from tests.helpers import jit_values

BACKEND = keras.backend.backend()


@pytest.mark.parametrize("rate", [0.1, 0.5])
def test_drops_per_example_at_rate_and_scales_the_kept(rate):
    layer = StochasticDepth(rate, seed=3)
    n = 4000
    shortcut = np.full((n, 3, 2), 0.25, "float32")
    residual = np.ones((n, 3, 2), "float32")
    out = ops.convert_to_numpy(layer([shortcut, residual], training=True))
    branch = out - 0.25
    per_example = branch.reshape(n, -1)
    # one decision per example, the same for every element
    assert (per_example == per_example[:, :1]).all()
    dropped = np.isclose(per_example[:, 0], 0.0)
    kept = per_example[~dropped, 0]
    np.testing.assert_allclose(kept, 1.0 / (1.0 - rate), rtol=1e-6)
    sigma = np.sqrt(rate * (1 - rate) / n)
    assert abs(dropped.mean() - rate) < 4 * sigma


def test_inference_is_the_plain_sum():
    layer = StochasticDepth(0.5, seed=0)
    a = np.random.default_rng(0).normal(size=(16, 4)).astype("float32")
    b = np.random.default_rng(1).normal(size=(16, 4)).astype("float32")
    for training in (None, False):
        out = ops.convert_to_numpy(layer([a, b], training=training))
        np.testing.assert_allclose(out, a + b, rtol=1e-6)


def _share_dropped(y_true, y_pred):
    return ops.mean(
        ops.cast(ops.all(ops.equal(y_pred, 0.0), axis=-1), "float32")
    )


@pytest.mark.parametrize("jit", jit_values())
def test_rate_is_a_knob_of_the_driver_in_a_compiled_fit(jit):
    """Epoch 0 at rate 0 keeps every branch, epoch 1 at 0.5 drops about
    half (the same compiled step: no retrace), with and without XLA."""
    spe = 1 if BACKEND == "torch" else 4
    inputs = keras.Input((8,))
    zeros = keras.layers.Lambda(lambda t: t * 0.0)(inputs)
    out = StochasticDepth(0.0, name="sd", seed=0)([zeros, inputs])
    model = keras.Model(inputs, keras.layers.Dense(8, trainable=False)(out))
    model.compile(
        keras.optimizers.SGD(0.0), "mse", metrics=[_share_dropped],
        steps_per_execution=spe, jit_compile=jit,
    )  # fmt: skip
    sched = ktp.callbacks.HyperparameterScheduler(
        {"sd.rate": S.PerEpoch({0: 0.0, 1: 0.5})}
    )
    x = np.ones((2048, 8), "float32")
    hist = model.fit(
        x, x, batch_size=64, epochs=2, verbose=0, callbacks=[sched]
    ).history
    assert hist["_share_dropped"][0] == 0.0
    assert abs(hist["_share_dropped"][1] - 0.5) < 0.06
    assert hist["sd.rate"] == [0.0, 0.5]


def test_config_and_saving(tmp_path):
    layer = StochasticDepth(0.2, seed=7, name="sd")
    clone = StochasticDepth.from_config(layer.get_config())
    assert clone.rate == 0.2 and clone.seed == 7
    inputs = keras.Input((4,))
    h = keras.layers.Dense(4)(inputs)
    model = keras.Model(inputs, layer([inputs, h]))
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded.get_layer("sd")) is StochasticDepth
    x = np.ones((2, 4), "float32")
    np.testing.assert_allclose(
        ops.convert_to_numpy(loaded(x)), ops.convert_to_numpy(model(x))
    )


@pytest.mark.parametrize("rate", [1.0, -0.1, float("nan"), "0.1"])
def test_bad_rates_are_named(rate):
    with pytest.raises((ValueError, TypeError), match="rate"):
        StochasticDepth(rate)
    with pytest.raises((ValueError, TypeError), match="max_rate"):
        stochastic_depth_rates(4, rate)
    layer = StochasticDepth(0.1)
    with pytest.raises((ValueError, TypeError), match="rate"):
        layer.set_knob("rate", rate)


def test_inputs_must_be_a_pair_of_one_shape():
    layer = StochasticDepth(0.1)
    with pytest.raises(ValueError, match="shortcut, residual"):
        layer(np.ones((2, 3), "float32"), training=True)
    with pytest.raises(ValueError, match="one shape"):
        layer([np.ones((2, 3), "float32"), np.ones((2, 4), "float32")])


def test_linear_decay_over_depth():
    assert stochastic_depth_rates(4, 0.5) == [0.125, 0.25, 0.375, 0.5]
    assert stochastic_depth_rates(1, 0.0) == [0.0]
    with pytest.raises(ValueError, match="num_blocks"):
        stochastic_depth_rates(0, 0.5)
