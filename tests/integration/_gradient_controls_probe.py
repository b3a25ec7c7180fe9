"""Gradient accumulation schedules and gradient noise on 1 device and under
MirroredStrategy (2 logical CPUs): prints one JSON line.

Started in a subprocess by test_gradient_controls_distributed.py (logical
devices must be configured before TensorFlow initializes).
"""

import json
import os

os.environ["KERAS_BACKEND"] = "tensorflow"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration()] * 2
)

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_trainplus import callbacks as C  # noqa: E402

SAMPLES, B = 96, 8


def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(SAMPLES, 6)).astype("float32")
    y = (np.tanh(x @ rng.normal(size=(6, 1))) + 0.1).astype("float32")
    return x, y


def run_fine_tuning(strategy):
    """Layer-wise factors and gradual unfreezing under AdamW; the
    BatchNormalization layer stays frozen (inference mode: the same on
    every replica; trained, Keras's BN would use per-replica statistics)."""
    x, y = data()
    with strategy.scope():
        keras.utils.set_random_seed(1)
        model = keras.Sequential(
            [
                keras.Input((6,)),
                keras.layers.Dense(5, use_bias=False, name="a"),
                keras.layers.BatchNormalization(name="bn"),
                keras.layers.Dense(4, activation="tanh", name="b"),
                keras.layers.Dense(1, name="head"),
            ]
        )
        model.compile(keras.optimizers.AdamW(0.02, weight_decay=0.1), "mse")
    history = model.fit(
        x,
        y,
        batch_size=B,
        epochs=3,
        shuffle=False,
        verbose=0,
        callbacks=[
            C.DiscriminativeLR({"a": 0.5, "b": 0.25}),
            C.GradualUnfreezing({0: 1, 1: ["b", "head"], 2: ["a", "b"]}),
        ],
    )
    logs = {k: v for k, v in history.history.items() if k != "loss"}
    return result(model, strategy, logs)


def run_swa_batch_norm(strategy):
    """SWA's BatchNormalization pass (eager, over the global batches) under
    the strategy: the statistics against a direct computation."""
    x, y = data()
    with strategy.scope():
        keras.utils.set_random_seed(1)
        model = keras.Sequential(
            [
                keras.Input((6,)),
                keras.layers.Dense(5, name="a"),
                keras.layers.BatchNormalization(name="bn"),
                keras.layers.Dense(1),
            ]
        )
        model.compile(keras.optimizers.SGD(0.05), "mse")
    model.fit(
        x,
        y,
        batch_size=16,
        epochs=3,
        shuffle=False,
        verbose=0,
        callbacks=[C.StochasticWeightAveraging(0.01, 1, 1)],
    )
    dense, bn = model.get_layer("a"), model.get_layer("bn")
    h = x @ dense.kernel.numpy() + dense.bias.numpy()
    batches = [h[i : i + 16] for i in range(0, SAMPLES, 16)]
    mean = np.mean([b.mean(0) for b in batches], axis=0)
    var = np.mean([b.var(0) for b in batches], axis=0)
    copies = getattr(bn.moving_mean.value, "values", [bn.moving_mean.value])
    return {
        "mean_error": float(np.abs(bn.moving_mean.numpy() - mean).max()),
        "var_error": float(np.abs(bn.moving_variance.numpy() - var).max()),
        "replicas_equal": all(
            np.array_equal(np.asarray(c), np.asarray(copies[0])) for c in copies
        ),
    }


def run(strategy, case, spe=1):
    if case == "fine_tuning":
        return run_fine_tuning(strategy)
    x, y = data()
    with strategy.scope():
        keras.utils.set_random_seed(1)
        model = keras.Sequential(
            [
                keras.Input((6,)),
                keras.layers.Dense(5, activation="tanh"),
                keras.layers.Dense(1),
            ]
        )
        model.compile(
            keras.optimizers.SGD(0.1, momentum=0.5),
            loss="mse",
            steps_per_execution=spe,
        )
    batch, callbacks = B, []
    if case == "accumulation":
        callbacks = [C.GradientAccumulationScheduler({0: 2, 1: 4, 2: 5})]
    elif case == "reference":  # batch k*B without accumulation, per epoch
        for k in (2, 4):
            model.fit(
                x, y, batch_size=k * B, epochs=1, shuffle=False, verbose=0
            )
        batch, callbacks = B, []
        for lo, hi in ((0, 40), (40, 80), (80, 96)):
            model.train_on_batch(x[lo:hi], y[lo:hi])
        return result(model, strategy, {})
    elif case == "noise":
        callbacks = [C.GradientNoise(0.05, seed=11)]
    elif case == "noise_unseeded":
        callbacks = [C.GradientNoise(0.05)]
    elif case == "averaging":  # validation on the EMA, SWA's average kept
        callbacks = [
            C.WeightEMA(
                0.8, use_warmup=True, every_n_steps=2, apply_at_end=False
            ),
            C.StochasticWeightAveraging(0.02, 1, 1, update_bn=False),
        ]
    elif case == "both":
        callbacks = [
            C.GradientNoise(0.05, seed=11),
            C.GradientAccumulationScheduler({0: 3}),
            C.GradientClipScheduler({0: 0.5}),
        ]
    epochs = 3 if case in ("accumulation", "averaging") else 2
    history = model.fit(
        x,
        y,
        batch_size=batch,
        epochs=epochs,
        shuffle=False,
        verbose=0,
        callbacks=callbacks,
        validation_data=(x, y) if case == "averaging" else None,
    )
    logs = {k: v for k, v in history.history.items() if k != "loss"}
    return result(model, strategy, logs)


def result(model, strategy, logs):
    replicas = []
    for variable in model.trainable_variables:
        values = getattr(variable.value, "values", [variable.value])
        replicas.append([np.asarray(v).ravel().tolist() for v in values])
    return {
        "w": np.concatenate([w.ravel() for w in model.get_weights()]).tolist(),
        "replicas": replicas,
        "iterations": int(model.optimizer.iterations.numpy()),
        "logs": logs,
        "n": strategy.num_replicas_in_sync,
    }


MIRRORED = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
out = {}
# steps_per_execution 1: stock `fit` fails under MirroredStrategy with
# more (keras-team/keras#19246; `_cluster.check_strategy_support`).
for case, spe in (
    ("accumulation", 1),
    ("noise", 1),
    ("noise_unseeded", 1),
    ("both", 1),
    ("fine_tuning", 1),
    ("averaging", 1),
):
    out[f"{case}-{spe}"] = {
        "single": run(tf.distribute.get_strategy(), case, spe),
        "mirrored": run(MIRRORED, case, spe),
    }
out["reference"] = run(tf.distribute.get_strategy(), "reference")
out["swa_batch_norm"] = run_swa_batch_norm(MIRRORED)
print("RESULT " + json.dumps(out))
