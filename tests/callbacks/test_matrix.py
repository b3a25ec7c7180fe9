"""Callbacks x optimizer options: every cell measured inside a compiled
`fit` through the probe model (update ``i`` only touches weight ``i``).

Options: the optimizer's EMA (`use_ema=True`), loss scaling
(`mixed_float16`, which wraps the optimizer in a `LossScaleOptimizer`) and
`mixed_bfloat16`, XLA / torch's `jit_compile=True`, and input of unknown
length. Gradient accumulation has its own module (test_accumulation.py),
exceptions theirs (test_exception_safety.py), tf.distribute and
keras.distribution theirs (test_distributed.py, test_data_parallel.py).
"""

import contextlib
import math

import keras
import numpy as np
import pytest
from keras import ops

from keras_trainplus import callbacks as C
from keras_trainplus import schedules as S
from tests.helpers import BACKEND
from tests.helpers import fit_probe
from tests.helpers import kernel
from tests.helpers import probe_data
from tests.helpers import probe_model
from tests.helpers import sgd_applied_lrs
from tests.helpers import simulate_sgd

N = 16  # updates: 2 epochs of 8

LR_CALLBACKS = {
    "one_cycle": lambda: C.OneCycleLR(0.5, cycle_momentum=False),
    "cyclic": lambda: C.CyclicLR(
        0.05, 0.4, step_size_up=3, cycle_momentum=False
    ),
    "warmup_cosine": lambda: C.WarmupDecayLR(
        0.4, warmup_steps=4, decay="cosine"
    ),
    "per_epoch_shape": lambda: C.PerEpochLR(
        [0.2, 0.1], step_shape=S.Linear(0.25, 1.0, 6)
    ),
    "driver": lambda: C.HyperparameterScheduler(
        {"learning_rate": S.Linear(0.3, 0.01, N)}
    ),
    "newbob_shape": lambda: C.NewbobLRControl(
        monitor="loss", initial_lr=0.2, step_shape=S.Linear(0.5, 1.0, 8)
    ),
}

OPTIONS = ["ema", "mixed_float16", "mixed_bfloat16", "jit"]


def _skip_slow_torch_jit(option, keep=False):
    """torch.compile compiles every model anew (~20 s on 2 cores): on torch
    the jit option runs for a few cells only (`keep`)."""
    if option == "jit" and BACKEND == "torch" and not keep:
        pytest.skip("torch.compile: covered by the one_cycle and clip cells")


@contextlib.contextmanager
def policy(name):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def _option_model(option, optimizer):
    jit = True if option == "jit" else "auto"
    if option.startswith("mixed"):
        with policy(option):
            return probe_model(N, optimizer, jit_compile=jit)
    return probe_model(N, optimizer, jit_compile=jit)


def _reference_lrs(make):
    model = probe_model(N, keras.optimizers.SGD(0.5))
    fit_probe(model, N, [make()], epochs=2)
    return sgd_applied_lrs(model)


def _ema(values, momentum):
    """Keras's EMA of the probe's weights (first update: momentum 0)."""
    w, avg = np.zeros(N), np.zeros(N)
    for i, lr in enumerate(values):
        w[i] = -lr
        m = 0.0 if i == 0 else momentum
        avg = m * avg + (1 - m) * w
    return avg


@pytest.mark.parametrize("option", OPTIONS)
@pytest.mark.parametrize("name", sorted(LR_CALLBACKS))
def test_learning_rate_callbacks_under_every_option(name, option):
    if option == "jit" and BACKEND == "jax":
        pytest.skip("JAX always compiles (covered by every other test)")
    _skip_slow_torch_jit(option, keep=name == "one_cycle")
    make = LR_CALLBACKS[name]
    expected = _reference_lrs(make)
    opt = keras.optimizers.SGD(0.5, use_ema=option == "ema", ema_momentum=0.9)
    model = _option_model(option, opt)
    if option.startswith("mixed_float16"):
        assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    history = fit_probe(model, N, [make()], epochs=2)
    if option == "ema":
        # fit ends by copying the EMA into the weights (Keras's finalize).
        np.testing.assert_allclose(
            -kernel(model), -_ema(expected, 0.9), rtol=1e-5
        )
    else:
        np.testing.assert_allclose(sgd_applied_lrs(model), expected, rtol=1e-5)
    assert all(isinstance(x, float) for x in history.history["learning_rate"])


@pytest.mark.parametrize("option", ["plain", "mixed_float16", "jit"])
def test_momentum_cycling_under_options(option):
    lrs = S.Linear(0.1, 0.3, N)
    moms = S.Linear(0.9, 0.5, N)
    _skip_slow_torch_jit(option)
    opt = keras.optimizers.SGD(0.5, momentum=0.9)
    model = (
        _option_model(option, opt) if option != "plain" else probe_model(N, opt)
    )
    fit_probe(
        model,
        N,
        [C.HyperparameterScheduler({"learning_rate": lrs, "momentum": moms})],
        epochs=2,
    )
    steps = range(N)
    expected = simulate_sgd([lrs(i) for i in steps], [moms(i) for i in steps])
    np.testing.assert_allclose(kernel(model), expected, rtol=1e-5)


@pytest.mark.parametrize("option", ["plain", "mixed_float16", "jit"])
def test_clip_acts_on_the_unscaled_gradient(option):
    """Probe gradient norm is 1 per update; the clip {0: 0.25, 1: None}
    makes the first epoch's updates 0.25 x lr, the second's lr. Clipping a
    loss-scaled gradient would give 0.25 / scale."""
    opt = keras.optimizers.SGD(1.0)
    model = (
        _option_model(option, opt) if option != "plain" else probe_model(N, opt)
    )
    fit_probe(model, N, [C.GradientClipScheduler({0: 0.25, 1: None})], epochs=2)
    np.testing.assert_allclose(
        sgd_applied_lrs(model), [0.25] * 8 + [1.0] * 8, rtol=1e-6
    )


@pytest.mark.parametrize(
    "option", ["plain", "mixed_float16", "mixed_bfloat16", "jit"]
)
def test_dropout_schedule_under_options(option):
    if option == "jit" and BACKEND == "jax":
        pytest.skip("JAX always compiles")
    _skip_slow_torch_jit(option)
    units = 4000
    ctx = (
        policy(option)
        if option.startswith("mixed")
        else contextlib.nullcontext()
    )
    with ctx:
        inputs = keras.Input((units,))
        dropped = keras.layers.Dropout(0.0, name="drop")(inputs)
        model = keras.Model(inputs, keras.layers.Dense(1)(dropped))
    model.compile(
        keras.optimizers.SGD(0.0),
        "mse",
        jit_compile=True if option == "jit" else "auto",
    )
    rates = []

    class Measure(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            layer = self.model.get_layer("drop")
            x = ops.ones((16, units), "float32")
            out = ops.convert_to_numpy(layer.call(x, training=True))
            rates.append(float(np.mean(out == 0)))

    x = np.ones((32, units), "float32")
    model.fit(
        x,
        np.zeros((32, 1)),
        batch_size=8,
        epochs=3,
        verbose=0,
        callbacks=[C.DropoutScheduler({0: 0.5, 1: 0.0, 2: 0.25}), Measure()],
    )
    np.testing.assert_allclose(rates, [0.5, 0.0, 0.25], atol=0.02)


@pytest.mark.parametrize("option", ["ema", "mixed_float16"])
def test_lr_finder_restores_under_options(option):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 8)).astype("float32")
    y = x[:, :1] * 2.0
    ctx = (
        policy(option)
        if option.startswith("mixed")
        else contextlib.nullcontext()
    )
    with ctx:
        model = keras.Sequential(
            [keras.Input((8,)), keras.layers.Dense(8), keras.layers.Dense(1)]
        )
    opt = keras.optimizers.SGD(0.01, momentum=0.9, use_ema=option == "ema")
    model.compile(opt, "mse")
    model.fit(x, y, batch_size=8, verbose=0)  # EMA / loss scale hold values
    # Keras's JAX trainer leaves the EMA aliased into the weights after fit
    # (a second fit then fails in stock Keras: "donate the same buffer
    # twice"); give every variable its own buffer.
    for var in model.variables + model.optimizer.variables:
        var.assign(np.array(ops.convert_to_numpy(var)))
    before = [
        np.array(ops.convert_to_numpy(v))
        for v in model.variables + model.optimizer.variables
    ]
    finder = C.LRFinder(1e-4, 1.0, num_steps=12, divergence_threshold=None)
    model.fit(x, y, batch_size=8, epochs=3, verbose=0, callbacks=[finder])
    after = [
        np.array(ops.convert_to_numpy(v))
        for v in model.variables + model.optimizer.variables
    ]
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a, b)
    assert len(finder.result.losses) == 12
    assert np.all(np.isfinite(finder.result.losses))


# -- input of unknown length ---------------------------------------------------


@pytest.mark.parametrize(
    "make,argument",
    [
        (lambda: C.OneCycleLR(0.5, cycle_momentum=False), "total_steps"),
        (
            lambda: C.WarmupDecayLR(0.5, warmup_steps=0.1, decay="cosine"),
            "total_steps",
        ),
    ],
)
def test_length_from_fit_needs_a_known_length(make, argument):
    model = probe_model(N, keras.optimizers.SGD(0.5))
    with pytest.raises(ValueError, match=argument):
        model.fit(
            _generator_no_length(), epochs=2, verbose=0, callbacks=[make()]
        )
    np.testing.assert_allclose(kernel(model), 0.0)


def _generator_no_length():
    """A finite generator without `steps_per_epoch`: `fit` cannot know the
    number of steps of an epoch before it ends."""
    x, y = probe_data(N)
    for i in range(N):
        yield x[i : i + 1], y[i : i + 1]


def test_per_epoch_callbacks_work_with_unknown_length():
    model = probe_model(N, keras.optimizers.SGD(0.5))
    history = model.fit(
        _generator_no_length(),
        epochs=1,
        verbose=0,
        callbacks=[C.PerEpochLR([0.25])],
    )
    np.testing.assert_allclose(sgd_applied_lrs(model), 0.25, rtol=1e-6)
    assert history.history["learning_rate"] == [0.25]


@pytest.mark.tf_only
def test_tf_data_without_cardinality():
    import tensorflow as tf

    x, y = probe_data(N)
    ds = (
        tf.data.Dataset.from_tensor_slices((x, y))
        .filter(lambda a, b: True)
        .batch(1)
    )
    assert int(ds.cardinality()) < 0
    model = probe_model(N, keras.optimizers.SGD(0.5))
    with pytest.raises(ValueError, match="total_steps"):
        model.fit(
            ds,
            epochs=2,
            verbose=0,
            callbacks=[C.OneCycleLR(0.5, cycle_momentum=False)],
        )
    model = probe_model(N, keras.optimizers.SGD(0.5))
    model.fit(
        ds, epochs=1, verbose=0, callbacks=[C.GradientClipScheduler({0: 0.5})]
    )
    np.testing.assert_allclose(sgd_applied_lrs(model), 0.25, rtol=1e-6)
    assert not math.isnan(float(kernel(model)[0]))


@pytest.mark.parametrize("option", ["plain", *OPTIONS])
@pytest.mark.parametrize(
    "name", ["one_cycle", "warmup_cosine", "newbob_shape", "driver"]
)
def test_lr_multiplier_multiplies_every_lr_schedule(name, option):
    """A per-step multiplier on the probe layer: update i uses the LR
    callback's LR i times the multiplier i, under every option."""
    if option == "jit" and BACKEND == "jax":
        pytest.skip("JAX always compiles (covered by every other test)")
    _skip_slow_torch_jit(option, keep=name == "one_cycle")
    make = LR_CALLBACKS[name]
    factor = S.Linear(1.0, 0.25, N)
    expected = _reference_lrs(make) * np.array([factor(i) for i in range(N)])
    opt = keras.optimizers.SGD(0.5, use_ema=option == "ema", ema_momentum=0.9)
    model = (
        probe_model(N, opt) if option == "plain" else _option_model(option, opt)
    )
    target = f"lr_multiplier:{model.layers[-1].name}"
    multiplier = C.HyperparameterScheduler({target: factor})
    fit_probe(model, N, [make(), multiplier], epochs=2)
    if option == "ema":
        np.testing.assert_allclose(
            -kernel(model), -_ema(expected, 0.9), rtol=1e-5
        )
    else:
        np.testing.assert_allclose(sgd_applied_lrs(model), expected, rtol=1e-5)


def test_lr_multiplier_multiplies_the_optimizers_own_schedule():
    decay = keras.optimizers.schedules.ExponentialDecay(0.5, 4, 0.5)
    model = probe_model(N, keras.optimizers.SGD(decay))
    target = f"lr_multiplier:{model.layers[-1].name}"
    fit_probe(
        model,
        N,
        [C.HyperparameterScheduler({target: S.PerEpoch([0.5, 0.25])})],
        epochs=2,
    )
    expected = [float(decay(i)) * (0.5 if i < 8 else 0.25) for i in range(N)]
    np.testing.assert_allclose(sgd_applied_lrs(model), expected, rtol=1e-5)
