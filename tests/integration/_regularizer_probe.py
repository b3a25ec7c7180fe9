"""Issue-17 features on one device and distributed: argument ``mirrored``
(TensorFlow, `MirroredStrategy` over 2 logical CPUs) or ``data_parallel``
(JAX, `keras.distribution.DataParallel` over 2 host CPU devices). Started
in a subprocess by test_regularizers_distributed.py (the devices must be
configured before the backend starts). Prints one JSON line: final
weights of weight-noise fits and of `LengthBatcher` fits, and (mirrored)
the per-replica drop decisions of `StochasticDepth`."""

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
from keras_trainplus import data  # noqa: E402
from keras_trainplus import layers as L  # noqa: E402


def in_scope(strategy, fn):
    if strategy is None:
        return fn()
    with strategy.scope():
        return fn()


def weights(model):
    return [keras.ops.convert_to_numpy(w).tolist() for w in model.weights]


def noise_fit(strategy=None):
    def build():
        keras.utils.set_random_seed(0)
        inp = keras.Input((6,))
        h = keras.layers.Dense(8, activation="tanh", name="fc")(inp)
        model = keras.Model(inp, keras.layers.Dense(1, name="head")(h))
        model.compile(keras.optimizers.SGD(0.1), "mse")
        return model

    model = in_scope(strategy, build)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 6)).astype("float32")
    y = rng.normal(size=(64, 1)).astype("float32")
    model.fit(
        x, y, batch_size=16, epochs=2, shuffle=False, verbose=0,
        callbacks=[C.WeightNoise(0.3, seed=5)],
    )  # fmt: skip
    return weights(model)


def batcher_fit(strategy=None):
    def build():
        keras.utils.set_random_seed(0)
        inp = keras.Input((None, 3))
        h = keras.layers.Dense(4, activation="tanh")(inp)
        out = keras.layers.Dense(1)(keras.layers.GlobalAveragePooling1D()(h))
        model = keras.Model(inp, out)
        model.compile(keras.optimizers.SGD(0.1), "mse")
        return model

    model = in_scope(strategy, build)
    rng = np.random.default_rng(1)
    x = [
        rng.normal(size=(n, 3)).astype("float32")
        for n in rng.integers(2, 30, 96)
    ]
    y = rng.normal(size=(96, 1)).astype("float32")
    batcher = data.LengthBatcher(
        x, y, batch_size=16, max_length={0: 15, 1: None}, seed=3,
        pad_to_multiple_of=4, max_tokens=200, required_batch_size_multiple=2,
    )  # fmt: skip
    model.fit(batcher, callbacks=[batcher], epochs=2, shuffle=False, verbose=0)
    return weights(model)


def stochastic_depth_replicas(strategy):
    layer = L.StochasticDepth(0.5, seed=1)
    n = 2000
    shortcut = tf.zeros((n, 2))
    residual = tf.ones((n, 2))

    def step():
        return layer([shortcut, residual], training=True)[:, 0]

    result = strategy.run(tf.function(step))
    return [keras.ops.convert_to_numpy(r).tolist() for r in result.values]


out = {"single": {"noise": noise_fit(), "batcher": batcher_fit()}}
if MODE == "mirrored":
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    out["replicas"] = strategy.num_replicas_in_sync
    out["distributed"] = {
        "noise": noise_fit(strategy),
        "batcher": batcher_fit(strategy),
    }
    out["drops"] = stochastic_depth_replicas(strategy)
else:
    parallel = keras.distribution.DataParallel(devices=jax.devices())
    out["replicas"] = len(jax.devices())
    keras.distribution.set_distribution(parallel)
    out["distributed"] = {"noise": noise_fit(), "batcher": batcher_fit()}
    keras.distribution.set_distribution(None)
print("RESULT " + json.dumps(out))
