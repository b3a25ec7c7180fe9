"""Runs `TrainingMonitor` fits on one device and distributed: argument
``mirrored`` (TensorFlow, `MirroredStrategy` over 2 logical CPUs) or
``data_parallel`` (JAX, `keras.distribution.DataParallel` over 2 host
CPU devices). Started in a subprocess by test_monitor_distributed.py: the
devices must be configured before the backend starts. Prints one JSON
line: per run, the monitor's steps and history."""

import json
import sys

from _devices import two_devices

MODE = sys.argv[1]
if MODE == "mirrored":
    tf = two_devices(MODE)
else:
    jax = two_devices(MODE)

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_trainplus import callbacks as C  # noqa: E402


def build():
    keras.utils.set_random_seed(0)
    inp = keras.Input((6, 6, 2))
    h = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(inp)
    h = keras.layers.Flatten()(h)
    h = keras.layers.Dense(8, activation="relu", name="fc")(h)
    model = keras.Model(inp, keras.layers.Dense(1, name="head")(h))
    return model


def run(strategy=None, distribution=None, spe=1):
    keras.distribution.set_distribution(distribution)
    scope = strategy.scope() if strategy is not None else None
    if scope is not None:
        scope.__enter__()
    try:
        model = build()
        model.compile(
            keras.optimizers.SGD(0.05, momentum=0.9, global_clipnorm=0.5),
            "mse",
            steps_per_execution=spe,
        )
    finally:
        if scope is not None:
            scope.__exit__(None, None, None)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 6, 6, 2)).astype("float32")
    y = rng.normal(size=(64, 1)).astype("float32")
    monitor = C.TrainingMonitor(every_n_steps=2, warn=False)
    model.fit(
        x, y, batch_size=16, epochs=2, shuffle=False, verbose=0,
        callbacks=[monitor],
    )  # fmt: skip
    keras.distribution.set_distribution(None)
    return {
        "steps": monitor.steps.tolist(),
        "names": monitor.layer_names,
        "history": {
            k: np.nan_to_num(v, nan=-1.0).tolist()
            for k, v in monitor.history.items()
        },
    }


out = {"single": run()}
if MODE == "mirrored":
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    out["replicas"] = strategy.num_replicas_in_sync
    out["distributed"] = run(strategy=strategy)
else:
    parallel = keras.distribution.DataParallel(devices=jax.devices())
    out["replicas"] = len(jax.devices())
    out["distributed"] = run(distribution=parallel)
    out["single_spe"] = run(spe=4)
    out["distributed_spe"] = run(distribution=parallel, spe=4)
print("RESULT " + json.dumps(out))
