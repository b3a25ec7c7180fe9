"""Gradient accumulation (`optimizer.gradient_accumulation_steps`): every
schedule's step is the number of real updates, lengths taken from `fit`
count real updates, the LR finder makes `num_steps` updates, per-step layer
schedules hold one value within an update, clipping acts on the averaged
gradient.

The check of exactness: with plain SGD and a mean loss, accumulation k at
batch B gives the same weights as batch k*B without accumulation.
"""

import keras
import numpy as np
import pytest
from keras import ops

from keras_trainplus import callbacks as C
from keras_trainplus import schedules as S
from tests.helpers import spe_values

K, B, SAMPLES, EPOCHS = 4, 4, 64, 2  # 16 micro-batches an epoch, 4 updates


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(SAMPLES, 6)).astype("float32")
    y = (x @ rng.normal(size=(6, 1)) + 0.1).astype("float32")
    return x, y


def _model(accumulate, momentum=0.0, spe=1, clipnorm=None):
    keras.utils.set_random_seed(1)
    model = keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(3, activation="tanh"),
            keras.layers.Dense(1),
        ]
    )
    opt = keras.optimizers.SGD(
        0.05,
        momentum=momentum,
        gradient_accumulation_steps=K if accumulate else None,
    )
    model.compile(opt, "mse", steps_per_execution=spe)
    return model


def _weights(model):
    return [np.asarray(ops.convert_to_numpy(w)) for w in model.weights]


CALLBACKS = {
    "one_cycle": (lambda: C.OneCycleLR(max_lr=0.5), 0.9),
    "cyclic": (lambda: C.CyclicLR(0.01, 0.3, step_size_up=3), 0.9),
    "warmup_cosine": (
        lambda: C.WarmupDecayLR(0.3, warmup_steps=0.25, decay="cosine"),
        0.0,
    ),
    "per_epoch_shape": (
        lambda: C.PerEpochLR([0.1, 0.05], step_shape=S.Linear(0.2, 1.0, 5)),
        0.0,
    ),
    "driver": (
        lambda: C.HyperparameterScheduler(
            {
                "learning_rate": S.Linear(0.3, 0.01, 8),
                "momentum": S.Linear(0.5, 0.9, 8),
            }
        ),
        0.9,
    ),
    "clip": (lambda: C.GradientClipScheduler(S.Linear(0.05, 0.5, 8)), 0.0),
    "newbob": (
        lambda: C.NewbobLRControl(
            monitor="loss", initial_lr=0.2, relative_error_threshold=0.5
        ),
        0.0,
    ),
}


@pytest.mark.parametrize("spe", spe_values())
@pytest.mark.parametrize("name", sorted(CALLBACKS))
def test_accumulation_equals_the_large_batch(name, spe):
    make, momentum = CALLBACKS[name]
    x, y = _data()
    runs = []
    for accumulate, batch in ((True, B), (False, K * B)):
        model = _model(accumulate, momentum, spe=spe if accumulate else 1)
        history = model.fit(
            x,
            y,
            batch_size=batch,
            epochs=EPOCHS,
            shuffle=False,
            verbose=0,
            callbacks=[make()],
        )
        runs.append((_weights(model), history.history, model))
    (wa, ha, ma), (wb, hb, mb) = runs
    assert (
        int(ops.convert_to_numpy(ma.optimizer.iterations))
        == int(ops.convert_to_numpy(mb.optimizer.iterations))
        == 8
    )
    for a, b in zip(wa, wb):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    for key in (
        "learning_rate",
        "momentum",
        "gradient_clip",
        "effective_learning_rate",
    ):
        if key in hb:
            np.testing.assert_allclose(ha[key], hb[key], rtol=1e-5)


def test_one_cycle_length_counts_real_updates():
    """The issue's example: 8 real updates, the last at max_lr/25/1e4."""
    x, y = np.ones((64, 1), "float32"), np.zeros((64, 1), "float32")
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(
        keras.optimizers.SGD(0.1, momentum=0.9, gradient_accumulation_steps=4),
        "mse",
    )
    history = model.fit(
        x,
        y,
        batch_size=4,
        epochs=2,
        verbose=0,
        callbacks=[C.OneCycleLR(max_lr=1.0)],
    )
    assert history.history["learning_rate"][-1] == pytest.approx(
        1.0 / 25 / 1e4, rel=1e-5
    )


@pytest.mark.parametrize("spe", spe_values())
def test_lr_finder_makes_num_steps_updates_with_mean_losses(spe):
    x, y = _data()
    results = []
    for accumulate, batch in ((True, B), (False, K * B)):
        model = _model(accumulate, spe=spe if accumulate else 1)
        before = _weights(model)
        finder = C.LRFinder(1e-3, 1.0, num_steps=6, divergence_threshold=None)
        model.fit(
            x,
            y,
            batch_size=batch,
            epochs=3,
            shuffle=False,
            verbose=0,
            callbacks=[finder],
        )
        for a, b in zip(before, _weights(model)):
            np.testing.assert_array_equal(a, b)
        results.append(finder.result)
    acc, big = results
    assert len(acc.losses) == len(big.losses) == 6
    np.testing.assert_allclose(acc.lrs, big.lrs, rtol=1e-12)
    np.testing.assert_allclose(acc.losses, big.losses, rtol=1e-5)


def test_per_step_dropout_holds_one_value_within_an_update():
    """Micro-batch j of update u = j // K drops at the schedule's value for
    u: measured per micro-batch from the zero share after the layer."""
    units, n = 4000, 8 * K
    inputs = keras.Input((units,))
    dropped = keras.layers.Dropout(0.0, name="drop")(inputs)
    out = keras.layers.Dense(1, name="out")(dropped)
    share = keras.layers.Lambda(
        lambda t: ops.mean(
            ops.cast(ops.equal(t, 0.0), "float32"), axis=-1, keepdims=True
        ),
        name="share",
    )(dropped)
    model = keras.Model(inputs, {"out": out, "share": share})

    def zero_share(y_true, y_pred):
        return ops.mean(y_pred)

    model.compile(
        keras.optimizers.SGD(0.0, gradient_accumulation_steps=K),
        loss={"out": "mse"},
        metrics={"share": [zero_share]},
    )
    means = []

    class Record(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            key = [k for k in logs if "zero_share" in k][0]
            means.append(float(logs[key]))

    schedule = S.Linear(0.0, 0.7, 7)
    model.fit(
        np.ones((n, units), "float32"),
        {
            "out": np.zeros((n, 1), "float32"),
            "share": np.zeros((n, 1), "float32"),
        },
        batch_size=1,
        epochs=1,
        shuffle=False,
        verbose=0,
        callbacks=[C.DropoutScheduler(schedule), Record()],
    )
    running = np.asarray(means) * np.arange(1, n + 1)
    per_batch = np.diff(np.concatenate([[0.0], running]))
    expected = [schedule(j // K) for j in range(n)]
    np.testing.assert_allclose(per_batch, expected, atol=0.03)
