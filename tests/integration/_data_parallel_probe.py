"""Runs probe fits on 1 device and under `keras.distribution.DataParallel`
(JAX, 2 host CPU devices).

Started in a subprocess by test_data_parallel.py: the device count must be
set before JAX initializes. Every case runs twice in this process, once
without a distribution and once with one, on identical data and seeds.
Prints one JSON line.
"""

import json
import os
import sys

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "")
    + " --xla_force_host_platform_device_count=2"
)
os.environ["KERAS_BACKEND"] = "jax"

import jax  # noqa: E402
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
from keras_trainplus import schedules as S  # noqa: E402

N = 48
L = keras_trainplus.layers


class ShardingProbe(keras.layers.Layer):
    """Identity that records over how many devices the traced batch is
    split (JAX reports the sharding when the step is compiled)."""

    devices = []

    def call(self, x):
        jax.debug.inspect_array_sharding(
            x,
            callback=lambda s: ShardingProbe.devices.append(
                len(s.device_set) if not s.is_fully_replicated else 1
            ),
        )
        return x


def halves_differ(y_true, y_pred):
    """Mean |first half - second half| of the global batch."""
    half = keras.ops.shape(y_pred)[0] // 2
    return keras.ops.mean(keras.ops.abs(y_pred[:half] - y_pred[half:]))


def weights(model):
    return [
        np.asarray(keras.ops.convert_to_numpy(w)).ravel().tolist()
        for w in model.weights
    ]


def history(h):
    return {k: [float(x) for x in vals] for k, vals in h.history.items()}


def kernel_sharding(model):
    """Devices holding the probe kernel (2 under DataParallel)."""
    return len(model.layers[-1].kernel.value.sharding.device_set)


def run_probe(case, spe):
    """The probe model (update k touches weights 2k, 2k+1)."""
    x, y = np.eye(N, dtype="float32"), np.zeros((N, 1), "float32")
    if case == "knob":
        knob = Knob(0.1, name="lr_knob")
        model = probe_model(N, keras.optimizers.SGD(KnobLR(knob)), spe)
        knob.track(model.optimizer)
        callbacks = [SetKnob(knob)]
    elif case == "newbob":
        model = probe_model(N, keras.optimizers.SGD(0.1), spe)
        callbacks = [
            ScriptedLoss(),
            C.NewbobLRControl(
                "newbob_rel", initial_lr=0.1, step_shape=S.Linear(0.5, 1.0, 4)
            ),
        ]
    elif case == "warmup":
        model = probe_model(
            N, keras.optimizers.AdamW(0.5, weight_decay=0.0), spe
        )
        callbacks = [
            C.WarmupDecayLR(
                0.05, warmup_steps=6, decay="cosine", final_lr=0.001
            )
        ]
    elif case == "per_epoch":
        model = probe_model(N, keras.optimizers.SGD(0.5, momentum=0.5), spe)
        callbacks = [
            C.PerEpochLR([0.1, 0.05, 0.02], step_shape=S.Linear(0.2, 1.0, 5))
        ]
    elif case == "generic":
        model = probe_model(
            N, keras.optimizers.AdamW(0.05, weight_decay=0.01), spe
        )
        callbacks = [
            C.HyperparameterScheduler(
                {
                    "learning_rate": S.Cosine(0.05, 0.005, 24),
                    "beta_1": S.Linear(0.95, 0.85, 24),
                    "weight_decay": S.PerEpoch([0.01, 0.0, 0.02]),
                }
            )
        ]
    elif case == "onecycle":
        model = probe_model(N, keras.optimizers.SGD(0.5, momentum=0.9), spe)
        callbacks = [C.OneCycleLR(0.1, pct_start=0.4)]
    else:
        model = probe_model(N, keras.optimizers.Adam(0.5), spe)
        callbacks = [C.CyclicLR(0.001, 0.01, 5, 3, mode="triangular2")]
    # 8 updates of 2 samples per epoch: every update touches new weights.
    h = model.fit(
        x,
        y,
        batch_size=2,
        epochs=3,
        steps_per_epoch=8,
        shuffle=False,
        verbose=0,
        callbacks=callbacks,
    )
    return {
        "w": kernel(model).tolist(),
        "logs": history(h),
        "devices": kernel_sharding(model),
    }


def run_dropout():
    """Zero fraction after scheduled stock `Dropout` on ones (an output of
    its own), and a Dense head trained on the dropped inputs."""
    inp = keras.Input((256,))
    dropped = keras.layers.Dropout(0.5, seed=3, name="drop")(inp)
    head = keras.layers.Dense(4, name="head")(dropped)
    model = keras.Model(inp, [dropped, head])
    model.compile(
        keras.optimizers.SGD(0.01),
        loss=["mse", "mse"],
        loss_weights=[0.0, 1.0],
        metrics=[[zero_frac], []],
    )
    x = np.ones((256, 256), "float32")
    y = np.linspace(-1, 1, 256 * 4).reshape(256, 4).astype("float32")
    h = model.fit(
        x,
        [x, y],
        batch_size=32,
        epochs=3,
        shuffle=False,
        verbose=0,
        callbacks=[C.DropoutScheduler({0: 0.5, 1: 0.0, 2: 0.25})],
    )
    return {"w": weights(model), "logs": history(h)}


def run_clip():
    """Per-step update norm with SGD(1.0) and a constant huge gradient."""
    inp = keras.Input((8,))
    out = keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros")(inp)
    model = keras.Model(inp, out)
    model.compile(keras.optimizers.SGD(1.0), loss=clip_loss)
    x = np.ones((64, 8), "float32")
    y = np.full((64, 1), 1000.0, "float32")
    h = model.fit(
        x,
        y,
        batch_size=8,
        epochs=3,
        shuffle=False,
        verbose=0,
        callbacks=[
            C.GradientClipScheduler({0: 10.0, 1: None, 2: 5.0}),
            UpdateNorm(),
        ],
    )
    return {"w": weights(model), "logs": history(h)}


def run_gradient_controls(spe):
    """An MLP with an accumulation schedule (factors 2, 3; leftovers at the
    epoch ends) and seeded gradient noise after the clip."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 6)).astype("float32")
    y = np.tanh(x @ rng.normal(size=(6, 1))).astype("float32")
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
    h = model.fit(
        x,
        y,
        batch_size=8,
        epochs=2,
        shuffle=False,
        verbose=0,
        callbacks=[
            C.GradientAccumulationScheduler({0: 2, 1: 3}),
            C.GradientNoise(0.05, seed=4),
            C.GradientClipScheduler({0: 1.0}),
        ],
    )
    logs = history(h)
    logs["iterations"] = [float(model.optimizer.iterations)]
    return {"w": weights(model), "logs": logs}


def run_fine_tuning(spe):
    """Layer-wise factors and gradual unfreezing (a BatchNormalization layer
    frozen in inference mode, then trained on the global batch)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 6)).astype("float32")
    y = np.tanh(x @ rng.normal(size=(6, 1))).astype("float32")
    model = keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(5, use_bias=False, name="a"),
            keras.layers.BatchNormalization(name="bn"),
            keras.layers.Dense(4, activation="tanh", name="b"),
            keras.layers.Dense(1, name="head"),
        ]
    )
    model.compile(
        keras.optimizers.AdamW(0.02, weight_decay=0.1),
        loss="mse",
        steps_per_execution=spe,
    )
    h = model.fit(
        x,
        y,
        batch_size=8,
        epochs=3,
        shuffle=False,
        verbose=0,
        callbacks=[
            C.GradualUnfreezing({0: 1, 1: 2, 2: "all"}),
            C.DiscriminativeLR(decay=0.5),
        ],
    )
    return {"w": weights(model), "logs": history(h)}


def run_averaging(spe):
    """WeightEMA (warmup, every 2 updates; validation on the average) and
    SWA (annealed LR from epoch 1, BatchNormalization recomputed) together;
    the model ends with SWA's average."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 6)).astype("float32")
    y = np.tanh(x @ rng.normal(size=(6, 1))).astype("float32")
    keras.utils.set_random_seed(1)
    model = keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(5, name="a"),
            keras.layers.BatchNormalization(name="bn"),
            keras.layers.Dense(1, name="head"),
        ]
    )
    model.compile(
        keras.optimizers.SGD(0.05, momentum=0.5),
        loss="mse",
        steps_per_execution=spe,
    )
    h = model.fit(
        x,
        y,
        batch_size=8,
        epochs=3,
        shuffle=False,
        verbose=0,
        validation_data=(x, y),
        callbacks=[
            C.WeightEMA(
                0.8, use_warmup=True, every_n_steps=2, apply_at_end=False
            ),
            C.StochasticWeightAveraging(0.01, 1, annealing_epochs=1),
        ],
    )
    return {"w": weights(model), "logs": history(h)}


def run_finder():
    rng = np.random.RandomState(0)
    x = rng.normal(size=(256, 8)).astype("float32")
    y = (x[:, :3].sum(axis=1, keepdims=True) > 0).astype("float32")
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
    variables = model.variables + model.optimizer.variables
    before = [np.array(keras.ops.convert_to_numpy(v)) for v in variables]
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
    after = [np.array(keras.ops.convert_to_numpy(v)) for v in variables]
    restored = all(np.array_equal(a, b) for a, b in zip(before, after))
    return {
        "losses": result.losses.tolist(),
        "lrs": result.lrs.tolist(),
        "restored": restored,
        "w": weights(model),
    }


def run_augment():
    """Each layer in a compiled `fit` whose output is the layer's output,
    on global batches of 8 distinct examples repeated twice: the half on
    device 1 gets the same examples as the half on device 0, so
    `halves_differ` > 0 means the devices drew different numbers. The
    targets are the inputs: with `mix_targets` the MixUp/CutMix loss is 0
    only if the targets are mixed exactly like the inputs."""
    out = {}
    rng = np.random.RandomState(0)
    images = rng.rand(8, 16, 16, 3).astype("float32")
    spec = rng.rand(8, 60, 20).astype("float32")
    makers = {
        "cutout": (lambda: L.Cutout(6, seed=1), images),
        "mixup": (lambda: L.MixUp(1.0, seed=1), images),
        "cutmix": (lambda: L.CutMix(seed=1), images),
        "specaugment": (
            lambda: L.SpecAugment(
                time_mask_param=20, freq_mask_param=5, seed=1
            ),
            spec,
        ),
    }
    for name, (make, examples) in makers.items():
        keras.utils.set_random_seed(0)
        x = np.concatenate([examples, examples] * 4)  # 4 batches of 16
        inputs = keras.Input(x.shape[1:])
        h = make()(ShardingProbe()(inputs))
        zero = keras.layers.Dense(
            x.shape[-1], kernel_initializer="zeros", use_bias=False
        )(h)
        model = keras.Model(inputs, keras.layers.Add()([h, zero]))
        if name in ("mixup", "cutmix"):
            L.mix_targets(model)
        model.compile(
            keras.optimizers.SGD(0.0),
            "mse",
            metrics=[
                keras.metrics.MeanMetricWrapper(
                    halves_differ, name="halves_differ"
                ),
                keras.metrics.MeanSquaredError(name="vs_orig"),
            ],
        )
        h = model.fit(x, x, batch_size=16, epochs=2, shuffle=False, verbose=0)
        out[name] = history(h)
    out["batch_devices"] = sorted(set(ShardingProbe.devices))
    ShardingProbe.devices.clear()
    return out


def run(case, distribution):
    # clear_session also resets the global distribution: set it after.
    keras.backend.clear_session(free_memory=False)
    keras.distribution.set_distribution(distribution)
    keras.utils.set_random_seed(0)
    if case == "dropout":
        return run_dropout()
    if case == "clip":
        return run_clip()
    if case == "finder":
        return run_finder()
    if case == "augment":
        return run_augment()
    name, _, spe = case.partition("@")
    if name == "gradient_controls":
        return run_gradient_controls(int(spe or 1))
    if name == "fine_tuning":
        return run_fine_tuning(int(spe or 1))
    if name == "averaging":
        return run_averaging(int(spe or 1))
    return run_probe(name, int(spe or 1))


CASES = [
    "onecycle",
    "cyclic",
    "warmup",
    "per_epoch",
    "generic",
    "knob",
    "newbob",
    "onecycle@4",
    "cyclic@4",
    "warmup@4",
    "per_epoch@4",
    "generic@4",
    "newbob@4",
    "dropout",
    "clip",
    "finder",
    "augment",
    "gradient_controls",
    "gradient_controls@3",
    "fine_tuning",
    "fine_tuning@3",
    "averaging",
    "averaging@2",
]
if len(sys.argv) > 1:
    CASES = sys.argv[1].split(",")

DISTRIBUTION = keras.distribution.DataParallel(devices=jax.devices())
out = {"devices": len(jax.devices())}
for case in CASES:
    result = {}
    for mode, distribution in (("single", None), ("parallel", DISTRIBUTION)):
        try:
            result[mode] = run(case, distribution)
        finally:
            keras.distribution.set_distribution(None)
    out[case] = result
print("RESULT " + json.dumps(out))
