"""Knob: a variable-backed value that compiled steps read."""

import keras
import numpy as np
import pytest
from helpers import BACKEND
from helpers import fit_probe
from helpers import probe_model
from helpers import sgd_applied_lrs

from keras_trainplus import Knob

N = 24


def test_assign_and_read():
    knob = Knob(0.5, name="rate")
    knob.assign(0.25)
    assert float(knob) == 0.25
    assert "rate" in repr(knob)
    with pytest.raises(ValueError, match="finite"):
        knob.assign(float("nan"))
    with pytest.raises(ValueError, match="value"):
        Knob("abc")
    with pytest.raises(ValueError, match="scalar"):
        Knob(variable=keras.Variable(np.zeros(3)))


def test_for_learning_rate_wraps_the_optimizer_variable():
    opt = keras.optimizers.SGD(0.3)
    knob = Knob.for_learning_rate(opt)
    knob.assign(0.125)
    assert float(keras.ops.convert_to_numpy(opt.learning_rate)) == 0.125
    with pytest.raises(ValueError, match="schedule"):
        Knob.for_learning_rate(
            keras.optimizers.SGD(
                keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.9)
            )
        )


class KnobSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """A learning rate read from a knob inside the compiled step."""

    def __init__(self, knob):
        self.knob = knob

    def __call__(self, step):
        return self.knob.read()


class SetKnobPerEpoch(keras.callbacks.Callback):
    def __init__(self, knob, values):
        super().__init__()
        self.knob, self.values = knob, values

    def on_epoch_begin(self, epoch, logs=None):
        self.knob.assign(self.values[epoch], model=self.model)


def _run(track):
    knob = Knob(0.1, name="lr_knob")
    model = probe_model(N, keras.optimizers.SGD(KnobSchedule(knob)))
    if track:
        knob.track(model.optimizer)
    fit_probe(model, N, [SetKnobPerEpoch(knob, [0.1, 0.2, 0.3])], epochs=3)
    return sgd_applied_lrs(model)


def test_writes_reach_the_compiled_step():
    lrs = _run(track=True)
    np.testing.assert_allclose(
        lrs, np.repeat([0.1, 0.2, 0.3], N // 3), rtol=1e-6
    )


@pytest.mark.skipif(BACKEND != "jax", reason="JAX-specific")
def test_untracked_knob_is_frozen_on_jax():
    """The documented JAX pitfall that `Knob.track` exists for."""
    lrs = _run(track=False)
    np.testing.assert_allclose(lrs, 0.1, rtol=1e-6)


@pytest.mark.skipif(BACKEND == "jax", reason="JAX needs track()")
def test_untracked_knob_works_off_jax():
    lrs = _run(track=False)
    np.testing.assert_allclose(
        lrs, np.repeat([0.1, 0.2, 0.3], N // 3), rtol=1e-6
    )


def test_track_adds_one_optimizer_variable_once():
    opt = keras.optimizers.SGD(0.1)
    before = len(opt.variables)
    knob = Knob(1.0)
    knob.track(opt)
    knob.track(opt)
    assert len(opt.variables) == before + 1


class _Scale(keras.layers.Layer):
    """Multiplies by a knob read in `call`."""

    def __init__(self, knob, **kwargs):
        super().__init__(**kwargs)
        self.knob = knob

    def call(self, x):
        return x * self.knob.read()


@pytest.mark.parametrize("kind", ["linear", "constant", "per_epoch"])
def test_knob_read_in_a_layer_call(kind):
    """A driver target read in a forward pass, in the knob's dtype (a
    per-step program on JAX is for the optimizer step only)."""
    from keras_trainplus import callbacks as C
    from keras_trainplus import schedules as S

    if kind == "linear" and keras.backend.backend() == "jax":
        pytest.skip("a JAX forward pass cannot read the optimizer step")
    schedule = {
        "linear": S.Linear(1.0, 0.0, 20),
        "constant": 0.5,
        "per_epoch": S.PerEpoch([1.0, 0.5]),
    }[kind]
    knob = Knob(1.0, name="scale")
    layer = _Scale(knob)
    knob.attach(layer)
    model = keras.Sequential([keras.Input((5,)), layer, keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    x, y = np.ones((32, 5), "float32"), np.ones((32, 1), "float32")
    history = model.fit(
        x,
        y,
        epochs=2,
        verbose=0,
        callbacks=[C.HyperparameterScheduler({knob: schedule})],
    )
    expected = {"linear": [1.0, 0.95], "constant": [0.5, 0.5]}.get(
        kind, [1.0, 0.5]
    )
    np.testing.assert_allclose(history.history["scale"], expected, rtol=1e-6)
