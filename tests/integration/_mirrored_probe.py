"""Runs probe fits on 1 device and under MirroredStrategy (2 logical CPUs).

Started in a subprocess by test_distributed.py: logical devices must be
configured before TensorFlow initializes. Prints one JSON line.
"""

import json
import os
import sys

os.environ["KERAS_BACKEND"] = "tensorflow"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration()] * 2
)

import keras  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(__file__)))
from _probe_parts import KnobLR  # noqa: E402
from _probe_parts import ScriptedLoss  # noqa: E402
from _probe_parts import SetKnob  # noqa: E402
from _probe_parts import UpdateNorm  # noqa: E402
from _probe_parts import clip_loss  # noqa: E402
from _probe_parts import zero_frac  # noqa: E402
from helpers import kernel  # noqa: E402
from helpers import probe_model  # noqa: E402

import keras_trainplus  # noqa: E402
from keras_trainplus import Knob  # noqa: E402
from keras_trainplus import callbacks as C  # noqa: E402

N = 48


def run_layers(strategy, case):
    """Dropout (zero fraction after dropout on ones) and clipping (per-step
    update norm with SGD(1.0) and a constant huge gradient)."""
    with strategy.scope():
        if case in ("dropout", "scheduled_dropout"):
            inp = keras.Input((256,))
            if case == "dropout":
                h = keras.layers.Dropout(0.5)(inp)
                rates = {0: 0.5, 1: 0.0, 2: 0.25}
            else:
                h = keras_trainplus.layers.ScheduledDropout(0.0)(inp)
                rates = {0: 0.25, 1: 0.5, 2: 0.0}
            out = keras.layers.Dense(
                256, use_bias=False, kernel_initializer="identity"
            )(h)
            model = keras.Model(inp, out)
            model.compile(
                keras.optimizers.SGD(0.0), loss="mse", metrics=[zero_frac]
            )
            x = np.ones((512, 256), "float32")
            y = x
            callbacks = [C.DropoutScheduler(rates)]
        else:
            inp = keras.Input((8,))
            out = keras.layers.Dense(
                1, use_bias=False, kernel_initializer="zeros"
            )(inp)
            model = keras.Model(inp, out)
            model.compile(keras.optimizers.SGD(1.0), loss=clip_loss)
            x = np.ones((64, 8), "float32")
            y = np.full((64, 1), 1000.0, "float32")
            callbacks = [
                C.GradientClipScheduler({0: 10.0, 1: None, 2: 5.0}),
                UpdateNorm(),
            ]
    history = model.fit(
        x,
        y,
        batch_size=8 if case == "clip" else 32,
        epochs=3,
        shuffle=False,
        verbose=0,
        callbacks=callbacks,
    )
    return {
        "logs": {k: v for k, v in history.history.items() if k != "loss"},
        "n": strategy.num_replicas_in_sync,
    }


def run_finder(strategy):
    rng = np.random.RandomState(0)
    x = rng.normal(size=(256, 8)).astype("float32")
    y = (x[:, :3].sum(axis=1, keepdims=True) > 0).astype("float32")
    with strategy.scope():
        keras.utils.set_random_seed(0)
        model = keras.Sequential(
            [
                keras.Input((8,)),
                keras.layers.Dense(16, activation="relu"),
                keras.layers.Dense(1),
            ]
        )
        model.compile(
            keras.optimizers.Adam(1e-3),
            loss=keras.losses.BinaryCrossentropy(from_logits=True),
        )
    model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    before = [
        np.array(keras.ops.convert_to_numpy(v))
        for v in model.variables + model.optimizer.variables
    ]
    result = keras_trainplus.find_lr(
        model,
        x,
        y,
        batch_size=16,
        start_lr=1e-3,
        end_lr=1.0,
        num_steps=16,
        shuffle=False,
        divergence_threshold=None,
        verbose=0,
    )
    after = [
        np.array(keras.ops.convert_to_numpy(v))
        for v in model.variables + model.optimizer.variables
    ]
    restored = all(np.array_equal(a, b) for a, b in zip(before, after))
    return {
        "losses": result.losses.tolist(),
        "lrs": result.lrs.tolist(),
        "restored": restored,
        "n": strategy.num_replicas_in_sync,
    }


def run_augment(strategy):
    """Per-replica draws of every augmentation layer fed identical data,
    and `fit` with targets mixed (the loss is 0 only if they are mixed
    exactly like the inputs)."""
    L = keras_trainplus.layers
    n = strategy.num_replicas_in_sync
    out = {"n": n}
    x = np.random.RandomState(0).rand(8, 16, 16, 3).astype("float32")
    y = np.eye(8, dtype="float32")
    spec = np.ones((8, 60, 20), "float32")
    with strategy.scope():
        layers = {
            "cutout": L.Cutout(6, seed=1),
            "mixup": L.MixUp(1.0, seed=1),
            "cutmix": L.CutMix(seed=1),
            "specaugment": L.SpecAugment(
                time_mask_param=20, freq_mask_param=5, seed=1
            ),
        }

    @tf.function
    def step():
        return {
            "cutout": layers["cutout"](x, training=True),
            "mixup": layers["mixup"]((x, y), training=True)[1],
            "cutmix": layers["cutmix"]((x, y), training=True)[1],
            "specaugment": layers["specaugment"](spec, training=True),
        }

    results = strategy.run(step)
    for name in layers:
        local = [
            np.asarray(t)
            for t in strategy.experimental_local_results(results[name])
        ]
        out[name + "_replicas_differ"] = bool(
            len(local) == 1 or not np.array_equal(local[0], local[1])
        )
        out[name + "_changed"] = bool(
            not np.array_equal(
                local[0],
                y
                if name in ("mixup", "cutmix")
                else (spec if name == "specaugment" else x),
            )
        )
    for name, make in (
        ("mixup", lambda: L.MixUp(alpha=1.0, seed=2)),
        ("cutmix", lambda: L.CutMix(seed=2)),
    ):
        with strategy.scope():
            inputs = keras.Input((16, 16, 3))
            h = make()(inputs)
            zero = keras.layers.Dense(
                3, kernel_initializer="zeros", use_bias=False
            )(h)
            model = keras.Model(inputs, keras.layers.Add()([h, zero]))
            L.mix_targets(model)
            model.compile(
                keras.optimizers.SGD(0.0),
                "mse",
                metrics=[keras.metrics.MeanSquaredError(name="vs_orig")],
            )
        data = np.random.RandomState(1).rand(64, 16, 16, 3).astype("float32")
        hist = model.fit(data, data, batch_size=16, epochs=2, verbose=0)
        out[name + "_fit_loss"] = max(hist.history["loss"])
        out[name + "_fit_vs_orig"] = min(hist.history["vs_orig"])
    return out


def run_spe_guard(strategy):
    """Mirrored + steps_per_execution > 1: stock Keras fails obscurely
    (keras#19246); our callbacks raise a clear error first."""
    x = np.random.RandomState(0).rand(64, 4).astype("float32")
    y = x[:, :1]
    out = {"n": strategy.num_replicas_in_sync}
    makers = {
        "onecycle": lambda: C.OneCycleLR(0.1),
        "newbob": lambda: C.NewbobLRControl(monitor="loss"),
        "finder": lambda: C.LRFinder(num_steps=4),
    }
    for name, make in makers.items():
        with strategy.scope():
            model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
            model.compile(
                keras.optimizers.SGD(0.1, momentum=0.9),
                "mse",
                steps_per_execution=4,
            )
        try:
            model.fit(
                x, y, batch_size=8, epochs=1, verbose=0, callbacks=[make()]
            )
            out[name] = "ok"
        except ValueError as e:
            out[name] = str(e)
    return out


def run(strategy, case):
    if case == "spe_guard":
        return run_spe_guard(strategy)
    if case == "augment":
        return run_augment(strategy)
    if case == "finder":
        return run_finder(strategy)
    if case in ("dropout", "clip", "scheduled_dropout"):
        return run_layers(strategy, case)
    x, y = np.eye(N, dtype="float32"), np.zeros((N, 1), "float32")
    with strategy.scope():
        if case == "knob":
            knob = Knob(0.1, name="lr_knob")
            model = probe_model(N, keras.optimizers.SGD(KnobLR(knob)))
            callbacks = [SetKnob(knob)]
            replicas = [
                str(v.device)
                for v in getattr(
                    knob.variable.value, "values", [knob.variable.value]
                )
            ]
        elif case == "newbob":
            model = probe_model(N, keras.optimizers.SGD(0.1))
            callbacks = [
                ScriptedLoss(),
                C.NewbobLRControl(
                    "newbob_rel",
                    initial_lr=0.1,
                    step_shape=keras_trainplus.schedules.Linear(0.5, 1.0, 4),
                ),
            ]
            replicas = []
        elif case == "warmup":
            model = probe_model(
                N, keras.optimizers.AdamW(0.5, weight_decay=0.0)
            )
            callbacks = [
                C.WarmupDecayLR(
                    0.05, warmup_steps=6, decay="cosine", final_lr=0.001
                )
            ]
            replicas = []
        elif case == "per_epoch":
            model = probe_model(N, keras.optimizers.SGD(0.5, momentum=0.5))
            callbacks = [
                C.PerEpochLR(
                    [0.1, 0.05, 0.02],
                    step_shape=keras_trainplus.schedules.Linear(0.2, 1.0, 5),
                )
            ]
            replicas = []
        elif case == "generic":
            model = probe_model(
                N, keras.optimizers.AdamW(0.05, weight_decay=0.01)
            )
            S = keras_trainplus.schedules
            callbacks = [
                C.HyperparameterScheduler(
                    {
                        "learning_rate": S.Cosine(0.05, 0.005, 24),
                        "beta_1": S.Linear(0.95, 0.85, 24),
                        "weight_decay": S.PerEpoch([0.01, 0.0, 0.02]),
                    }
                )
            ]
            replicas = []
        else:
            opt = (
                keras.optimizers.SGD(0.5, momentum=0.9)
                if case == "sgd"
                else keras.optimizers.Adam(0.5)
            )
            model = probe_model(N, opt)
            callbacks = (
                [C.OneCycleLR(0.1, pct_start=0.4)]
                if case == "sgd"
                else [C.CyclicLR(0.001, 0.01, 5, 3, mode="triangular2")]
            )
            replicas = []
    # 8 updates of 2 samples per epoch: every update touches new weights.
    history = model.fit(
        x,
        y,
        batch_size=2,
        epochs=3,
        steps_per_epoch=8,
        shuffle=False,
        verbose=0,
        callbacks=callbacks,
    )
    logs = {k: v for k, v in history.history.items() if k != "loss"}
    return {
        "w": kernel(model).tolist(),
        "logs": logs,
        "replicas": replicas,
        "n": strategy.num_replicas_in_sync,
    }


# One strategy object for every case: separate MirroredStrategy objects in
# one process can reuse collective instance keys across models of different
# shapes (a TensorFlow quirk unrelated to keras_trainplus).
MIRRORED = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
out = {}
for case in (
    "sgd",
    "adam",
    "knob",
    "newbob",
    "dropout",
    "clip",
    "finder",
    "augment",
    "spe_guard",
    "warmup",
    "per_epoch",
    "generic",
    "scheduled_dropout",
):
    out[case] = {
        "single": run(tf.distribute.get_strategy(), case),
        "mirrored": run(MIRRORED, case),
    }
print("RESULT " + json.dumps(out))
