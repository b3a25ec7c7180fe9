"""Throughput of layer-wise learning rates and freezing.

Same MLP and protocol as `callback_overhead.py` (variants interleaved in
rotating order, one short `fit(epochs=1)` each per round, the first
execution block of every fit untimed), with Adam. Ratios against plain
`fit` measured in the same rounds:

* `DiscriminativeLR(decay=0.5)`: a constant multiplier on every layer
  (target >= 0.98);
* a per-epoch multiplier on every layer (`PerEpoch([1.0])`, so the layers
  can be frozen: the in-graph skip runs on every update; target >= 0.98);
* `GradualUnfreezing({0: 1})`: everything but the head frozen (recorded).

Usage:
    KERAS_BACKEND=tensorflow python benchmarks/fine_tuning.py
    python benchmarks/fine_tuning.py --rounds 2 --quick   # smoke test
"""

import argparse
import json
import os
import platform
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from callback_overhead import measure  # noqa: E402
from gradient_controls import report  # noqa: E402

import keras_trainplus as ktp  # noqa: E402

C = ktp.callbacks
LAYERS = ("hidden_1", "hidden_2", "logits")


def variants():
    """name -> (unused, callbacks factory, baseline name)."""
    per_epoch = {
        f"lr_multiplier:{name}": ktp.schedules.PerEpoch([1.0])
        for name in LAYERS
    }
    return {
        "plain": ({}, lambda: [], None),
        "DiscriminativeLR(decay=0.5)": (
            {},
            lambda: [C.DiscriminativeLR(decay=0.5)],
            "plain",
        ),
        "freezable multiplier, all": (
            {},
            lambda: [C.HyperparameterScheduler(per_epoch)],
            "plain",
        ),
        "GradualUnfreezing({0: 1})": (
            {},
            lambda: [C.GradualUnfreezing({0: 1})],
            "plain",
        ),
    }


def build(spe):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((20,)),
            keras.layers.Dense(256, activation="relu", name=LAYERS[0]),
            keras.layers.Dense(256, activation="relu", name=LAYERS[1]),
            keras.layers.Dense(10, name=LAYERS[2]),
        ]
    )
    model.compile(
        keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        steps_per_execution=spe,
    )
    return model


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--samples", type=int, default=20480)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", help="write raw results here")
    args = parser.parse_args()
    if keras.backend.backend() == "tensorflow" and args.threads:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    if args.quick:
        args.samples = 6400
    rng = np.random.RandomState(0)
    x = rng.normal(size=(args.samples, 20)).astype("float32")
    y = rng.randint(0, 10, size=args.samples)
    backend = keras.backend.backend()
    header = (
        f"keras {keras.__version__}, backend {backend}, keras_trainplus "
        f"{ktp.__version__}, {platform.processor() or platform.machine()}, "
        f"threads={args.threads or 'default'}; {args.samples} samples, batch "
        f"{args.batch}, {args.rounds} rounds"
    )
    print(header)
    table = variants()
    names = list(table)
    results = {}
    for spe in (1,) if backend == "torch" else (1, 32):
        models = {n: build(spe) for n in names}
        rates = {n: [] for n in names}
        for r in range(args.rounds + 1):
            order = names[r % len(names) :] + names[: r % len(names)]
            for name in order:
                rate = measure(models[name], table[name][1](), x, y, args.batch)
                if r:  # round 0 warms up
                    rates[name].append(rate)
        results[spe] = rates
        report(spe, rates, table)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"header": header, "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
