"""`GradientAccumulationScheduler` and the driver target
``"gradient_accumulation"``: factor k at batch B gives the weights of batch
k*B; leftovers at an epoch end make one update; changing the factor never
retraces; `optimizer.iterations` counts real updates; lengths from `fit`
count them in either callback order; the optimizer is stock afterwards."""

import copy
import math

import keras
import numpy as np
import pytest
from keras import ops

from keras_trainplus import callbacks as C
from keras_trainplus import schedules as S
from tests.helpers import CountTraces
from tests.helpers import spe_values

B, SAMPLES = 8, 96  # 12 micro-batches an epoch


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(SAMPLES, 6)).astype("float32")
    y = (np.tanh(x @ rng.normal(size=(6, 1))) + 0.1).astype("float32")
    return x, y


def _model(optimizer=None, spe=1, counter=False):
    keras.utils.set_random_seed(1)
    layers = [keras.Input((6,)), keras.layers.Dense(5, activation="tanh")]
    if counter:
        layers.append(CountTraces())
    model = keras.Sequential(layers + [keras.layers.Dense(1)])
    model.compile(
        optimizer or keras.optimizers.SGD(0.1),
        loss="mse",
        steps_per_execution=spe,
    )
    return model


def _assert_same_weights(a, b, rtol=1e-5):
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(wa, wb, rtol=rtol, atol=1e-6)


@pytest.mark.parametrize("spe", spe_values())
@pytest.mark.parametrize("k", [2, 4])
def test_factor_k_equals_batch_k_times_b(k, spe):
    x, y = _data()
    reference = _model(spe=spe)
    reference.fit(x, y, batch_size=k * B, epochs=2, shuffle=False, verbose=0)
    model = _model(spe=spe)
    history = model.fit(
        x,
        y,
        batch_size=B,
        epochs=2,
        shuffle=False,
        verbose=0,
        callbacks=[C.GradientAccumulationScheduler({0: k})],
    )
    _assert_same_weights(model, reference)
    assert int(model.optimizer.iterations) == 2 * SAMPLES // (k * B)
    assert history.history["gradient_accumulation"] == [float(k)] * 2
    assert all(
        type(v) is float for v in history.history["gradient_accumulation"]
    )


@pytest.mark.parametrize("spe", spe_values())
def test_leftover_micro_batches_make_one_update_at_the_epoch_end(spe):
    """12 micro-batches at factor 5: updates of 5, 5 and 2 micro-batches,
    each the mean of its micro-batches (equal sizes: the mean over them)."""
    x, y = _data()
    reference = _model(spe=1)
    for _ in range(2):
        for lo, hi in ((0, 40), (40, 80), (80, 96)):
            reference.train_on_batch(x[lo:hi], y[lo:hi])
    model = _model(spe=spe)
    model.fit(
        x,
        y,
        batch_size=B,
        epochs=2,
        shuffle=False,
        verbose=0,
        callbacks=[C.GradientAccumulationScheduler({0: 5})],
    )
    _assert_same_weights(model, reference)
    assert int(model.optimizer.iterations) == 6


def test_factor_changes_between_epochs_without_retracing():
    x, y = _data()
    reference = _model()
    for batch in (B, 2 * B, 4 * B, 4 * B):
        reference.fit(
            x, y, batch_size=batch, epochs=1, shuffle=False, verbose=0
        )
    model = _model(counter=True)
    CountTraces.traces = 0
    schedule = {0: 1, 1: 2, 2: 4}
    history = model.fit(
        x,
        y,
        batch_size=B,
        epochs=4,
        shuffle=False,
        verbose=0,
        callbacks=[C.GradientAccumulationScheduler(schedule)],
    )
    traces_after_fit = CountTraces.traces
    _assert_same_weights(model, reference)
    assert int(model.optimizer.iterations) == 12 + 6 + 3 + 3
    assert history.history["gradient_accumulation"] == [1.0, 2.0, 4.0, 4.0]
    # One trace for the train step (plus the symbolic build on some
    # backends), none per factor change: run again with 4 other factors.
    CountTraces.traces = 0
    model.fit(
        x,
        y,
        batch_size=B,
        epochs=4,
        shuffle=False,
        verbose=0,
        callbacks=[C.GradientAccumulationScheduler([3, 1, 6, 2])],
    )
    assert CountTraces.traces <= max(traces_after_fit, 2)


def test_callable_factor_and_adam_counts_real_updates():
    """Adam's bias correction uses real updates: the same as Keras's own
    fixed accumulation (12 micro-batches, factor 4: no leftovers)."""
    x, y = _data()
    keras_own = _model(
        keras.optimizers.Adam(0.01, gradient_accumulation_steps=4)
    )
    keras_own.fit(x, y, batch_size=B, epochs=2, shuffle=False, verbose=0)
    model = _model(keras.optimizers.Adam(0.01))
    model.fit(
        x,
        y,
        batch_size=B,
        epochs=2,
        shuffle=False,
        verbose=0,
        callbacks=[C.GradientAccumulationScheduler(lambda epoch: 4)],
    )
    _assert_same_weights(model, keras_own)
    assert int(model.optimizer.iterations) == int(
        keras_own.optimizer.iterations
    )


@pytest.mark.parametrize("accumulation_first", [True, False])
def test_lengths_from_fit_count_real_updates_in_either_order(
    accumulation_first,
):
    """OneCycleLR without `total_steps` over epochs of factors 1, 2, 4: 12 +
    6 + 3 = 21 updates; the last one uses the cycle's minimum."""
    x, y = _data()
    one_cycle = C.OneCycleLR(0.1, cycle_momentum=False)
    accumulation = C.GradientAccumulationScheduler({0: 1, 1: 2, 2: 4})
    callbacks = [one_cycle, accumulation]
    if accumulation_first:
        callbacks.reverse()
    model = _model()
    history = model.fit(
        x,
        y,
        batch_size=B,
        epochs=3,
        shuffle=False,
        verbose=0,
        callbacks=callbacks,
    )
    expected = S.OneCycle(0.1, 21)
    lrs = history.history["learning_rate"]
    np.testing.assert_allclose(
        lrs, [expected(11), expected(17), expected(20)], rtol=1e-6
    )
    assert int(model.optimizer.iterations) == 21


def test_driver_target_and_per_step_layer_schedule():
    """The target of the driver; a per-step dropout schedule steps once per
    update (the layer counter follows the factor of each epoch)."""
    x, y = _data()
    keras.utils.set_random_seed(1)
    model = keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(5, activation="tanh"),
            keras.layers.Dropout(0.0),
            keras.layers.Dense(1),
        ]
    )
    model.compile(keras.optimizers.SGD(0.1), loss="mse")
    driver = C.HyperparameterScheduler(
        {
            "gradient_accumulation": S.PerEpoch({0: 2, 1: 3}),
            "dropout": S.Linear(0.0, 0.4, 8),
        }
    )
    history = model.fit(
        x,
        y,
        batch_size=B,
        epochs=2,
        shuffle=False,
        verbose=0,
        callbacks=[driver],
    )
    assert history.history["gradient_accumulation"] == [2.0, 3.0]
    assert int(model.optimizer.iterations) == 6 + 4
    # the rate of each epoch's last update: update 5 and update 9 (held)
    np.testing.assert_allclose(
        history.history["dropout_rate"], [0.25, 0.4], rtol=1e-6
    )


def test_optimizer_is_stock_after_fit_and_after_an_exception():
    x, y = _data()
    model = _model(keras.optimizers.Adam(0.01))
    model.fit(x[:8], y[:8], batch_size=B, epochs=1, verbose=0)
    before = len(model.optimizer.variables)
    attributes = set(vars(model.optimizer))

    class Boom(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 5:
                raise RuntimeError("boom")

    for extra in ([], [Boom()]):
        try:
            model.fit(
                x,
                y,
                batch_size=B,
                epochs=2,
                verbose=0,
                callbacks=[C.GradientAccumulationScheduler({0: 3})] + extra,
            )
        except RuntimeError:
            assert extra
        assert len(model.optimizer.variables) == before
        assert set(vars(model.optimizer)) == attributes
    # a plain fit counts every batch as an update again
    start = int(model.optimizer.iterations)
    model.fit(x, y, batch_size=B, epochs=1, verbose=0)
    assert int(model.optimizer.iterations) == start + 12


def test_saved_optimizer_has_the_stock_layout(tmp_path):
    x, y = _data()
    model = _model(keras.optimizers.Adam(0.01))

    class Save(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            self.model.save(tmp_path / "mid.keras")

    model.fit(
        x,
        y,
        batch_size=B,
        epochs=1,
        verbose=0,
        callbacks=[C.GradientAccumulationScheduler({0: 2}), Save()],
    )
    loaded = keras.saving.load_model(tmp_path / "mid.keras")
    assert len(loaded.optimizer.variables) == len(model.optimizer.variables)


@pytest.mark.parametrize(
    "bad",
    [0, -1, 2.5, {}, {-1: 2}, {0: 0}, {0: 1.5}, {0: 2, 3: -2}, [1, 0]],
)
def test_bad_factors(bad):
    with pytest.raises(ValueError, match="scheduling"):
        C.GradientAccumulationScheduler(bad)


@pytest.mark.parametrize("bad", ["2", None, object()])
def test_bad_scheduling_types(bad):
    with pytest.raises((TypeError, ValueError), match="scheduling"):
        C.GradientAccumulationScheduler(bad)


def test_callable_returning_a_bad_factor_fails_when_fit_starts():
    x, y = _data()
    model = _model()
    callback = C.GradientAccumulationScheduler(lambda e: 0 if e == 1 else 2)
    with pytest.raises(ValueError, match=r"scheduling\(1\)"):
        model.fit(x, y, batch_size=B, epochs=2, verbose=0, callbacks=[callback])
    assert "_backend_apply_gradients" not in vars(model.optimizer)


def test_keras_own_accumulation_is_an_error():
    x, y = _data()
    model = _model(keras.optimizers.SGD(0.1, gradient_accumulation_steps=2))
    with pytest.raises(ValueError, match="gradient_accumulation_steps"):
        model.fit(
            x,
            y,
            batch_size=B,
            epochs=1,
            verbose=0,
            callbacks=[C.GradientAccumulationScheduler({0: 2})],
        )


def test_per_step_schedule_is_an_error():
    x, y = _data()
    model = _model()
    driver = C.HyperparameterScheduler(
        {"gradient_accumulation": S.Linear(1, 4, 10)}
    )
    with pytest.raises(ValueError, match="between epochs"):
        model.fit(x, y, batch_size=B, epochs=1, verbose=0, callbacks=[driver])


def test_unknown_epoch_length_is_an_error():
    x, y = _data()

    def batches():
        for i in range(0, SAMPLES, B):
            yield x[i : i + B], y[i : i + B]

    model = _model()
    with pytest.raises(ValueError, match="steps_per_epoch"):
        model.fit(
            batches(),
            epochs=1,
            verbose=0,
            callbacks=[C.GradientAccumulationScheduler({0: 2})],
        )


def test_two_writers_are_an_error():
    x, y = _data()
    model = _model()
    with pytest.raises(ValueError, match="Two writers"):
        model.fit(
            x,
            y,
            batch_size=B,
            epochs=1,
            verbose=0,
            callbacks=[
                C.GradientAccumulationScheduler({0: 2}),
                C.HyperparameterScheduler({"gradient_accumulation": 3}),
            ],
        )


def test_config_round_trip_and_deepcopy():
    callback = C.GradientAccumulationScheduler({0: 1, 4: 2}, verbose=1)
    config = callback.get_config()
    clone = C.GradientAccumulationScheduler.from_config(config)
    assert clone.get_config() == config
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(callback)
    )
    assert restored.get_config() == config
    copied = copy.deepcopy(callback)
    assert copied.get_config() == config
    x, y = _data()
    model = _model()
    history = model.fit(
        x, y, batch_size=B, epochs=1, verbose=0, callbacks=[copied]
    )
    assert history.history["gradient_accumulation"] == [1.0]


def test_factor_1_is_plain_training():
    x, y = _data()
    reference = _model()
    reference.fit(x, y, batch_size=B, epochs=1, shuffle=False, verbose=0)
    model = _model()
    model.fit(
        x,
        y,
        batch_size=B,
        epochs=1,
        shuffle=False,
        verbose=0,
        callbacks=[C.GradientAccumulationScheduler({0: 1})],
    )
    _assert_same_weights(model, reference, rtol=1e-6)
    assert math.isclose(
        float(ops.convert_to_numpy(model.optimizer.iterations)), 12
    )


def test_lr_finder_with_an_accumulation_schedule_is_an_error():
    x, y = _data()
    model = _model()
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(ValueError, match="gradient_accumulation_steps"):
        model.fit(
            x,
            y,
            batch_size=B,
            epochs=1,
            verbose=0,
            callbacks=[
                C.GradientAccumulationScheduler({0: 2}),
                C.LRFinder(num_steps=5),
            ],
        )
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_factor_1_with_sparse_gradients_is_plain_training():
    """An Embedding's gradient (sparse on TensorFlow) with Adam."""
    rng = np.random.default_rng(0)
    xi = rng.integers(0, 20, size=(48, 3)).astype("int32")
    yi = rng.normal(size=(48, 1)).astype("float32")

    def model():
        keras.utils.set_random_seed(1)
        m = keras.Sequential(
            [
                keras.Input((3,), dtype="int32"),
                keras.layers.Embedding(20, 4),
                keras.layers.Flatten(),
                keras.layers.Dense(1),
            ]
        )
        m.compile(keras.optimizers.Adam(0.01), "mse")
        return m

    reference = model()
    reference.fit(xi, yi, batch_size=8, epochs=1, shuffle=False, verbose=0)
    scheduled = model()
    scheduled.fit(
        xi,
        yi,
        batch_size=8,
        epochs=1,
        shuffle=False,
        verbose=0,
        callbacks=[C.GradientAccumulationScheduler({0: 1})],
    )
    _assert_same_weights(scheduled, reference, rtol=1e-6)


def test_loss_scale_optimizer_is_an_error():
    x, y = _data()
    model = _model(keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD()))
    with pytest.raises(ValueError, match="LossScaleOptimizer"):
        model.fit(
            x,
            y,
            batch_size=B,
            epochs=1,
            verbose=0,
            callbacks=[C.GradientAccumulationScheduler({0: 2})],
        )


def test_factor_beyond_int32_is_an_error():
    with pytest.raises(ValueError, match="scheduling"):
        C.GradientAccumulationScheduler({0: 2**31})
