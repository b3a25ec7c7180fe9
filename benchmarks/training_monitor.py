"""Throughput of `TrainingMonitor`.

Same protocol as `gradient_controls.py` (variants interleaved in rotating
order, one short `fit(epochs=1)` each per round), on two models: the
benchmark MLP (20 -> 256 -> 256 -> 10, SGD with momentum) and a small CNN
(16x16x3 -> conv 16 -> conv 32 -> pool -> dense 10). The first two
execution blocks of every fit are untimed, for every variant: the monitor
runs two train functions (blocks that record and blocks that do not),
each traced at its first block; the monitor's reads at the epoch end are
timed. Ratios against plain `fit` in the same rounds:

* `TrainingMonitor(every_n_steps=10)` (target >= 0.97);
* `TrainingMonitor(every_n_steps=1)` (recorded: every update records).

The extra time per `fit` (the second trace and compilation) is printed
separately: whole `fit(epochs=1)` seconds against plain.

With `--step-cost` it times the MLP's train step alone in a compiled loop
(best of `--rounds`), for each function the monitor can run: ``"off"``
(a block that records nothing), ``"conditional"`` at `every_n_steps` 10
(the in-graph check of every step; records 1 step in 10) and ``"always"``
(a recording step, no conditional).

Usage:
    KERAS_BACKEND=tensorflow python benchmarks/training_monitor.py
    python benchmarks/training_monitor.py --rounds 2 --quick   # smoke test
"""

import os
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import best_per_step  # noqa: E402
from _common import fit_parser  # noqa: E402
from _common import header as run_header  # noqa: E402
from _common import use_threads  # noqa: E402
from _common import write_json  # noqa: E402
from callback_overhead import measure as measure_blocks  # noqa: E402
from gradient_controls import build  # noqa: E402
from gradient_controls import run_rounds  # noqa: E402
from weight_averaging import best_of  # noqa: E402

import keras_trainplus as ktp  # noqa: E402

C = ktp.callbacks


def variants():
    """name -> (unused options, callbacks factory, baseline name)."""
    return {
        "plain": ({}, lambda: [], None),
        "TrainingMonitor(every_n_steps=10)": (
            {},
            lambda: [C.TrainingMonitor(every_n_steps=10, warn=False)],
            "plain",
        ),
        "TrainingMonitor(every_n_steps=1)": (
            {},
            lambda: [C.TrainingMonitor(every_n_steps=1, warn=False)],
            "plain",
        ),
    }


FIT_SECONDS = {}  # variant -> whole-fit seconds per round


def measure(model, callbacks, x, y, batch):
    """`callback_overhead.measure` with two untimed blocks (the monitor
    traces two train functions), recording the whole fit's seconds."""
    begin = time.perf_counter()
    rate = measure_blocks(model, callbacks, x, y, batch, untimed_blocks=2)
    key = (model.steps_per_execution, type(callbacks[0]).__name__
           if callbacks else "plain", getattr(callbacks[0], "every_n_steps",
           0) if callbacks else 0)  # fmt: skip
    FIT_SECONDS.setdefault(key, []).append(time.perf_counter() - begin)
    return rate


def build_cnn(spe):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((16, 16, 3)),
            keras.layers.Conv2D(16, 3, activation="relu", padding="same"),
            keras.layers.Conv2D(32, 3, activation="relu", padding="same"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(10),
        ]
    )
    model.compile(
        keras.optimizers.SGD(1e-2, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        steps_per_execution=spe,
    )
    return model


def step_cost(rounds, steps=None):
    from weight_averaging import _compiled_steps

    steps = steps or (200 if keras.backend.backend() == "torch" else 1000)
    loops = {}
    for name, mode in (
        ("plain", None),
        ("off", "off"),
        ("conditional, every 10", "conditional"),
        ("always (a record step)", "always"),
    ):
        model = build(1, {})
        model.optimizer.build(model.trainable_variables)
        if mode is not None:
            monitor = C.TrainingMonitor(every_n_steps=10, warn=False)
            monitor.set_model(model)
            monitor.set_params({"epochs": 1, "steps": steps})
            monitor.on_train_begin()
            monitor._switch.mode = mode  # read when the loop is traced
        loops[name] = _compiled_steps(model, steps)
    best = best_per_step(loops, rounds, steps)
    print(f"\ntrain step alone, best of {rounds} x {steps} steps")
    print(f"{'function':<24} {'us/step':>8} {'extra us':>8} {'ratio':>7}")
    for n, t in best.items():
        extra = (t - best["plain"]) * 1e6
        print(
            f"{n:<24} {t * 1e6:>8.1f} {extra:>8.1f} {best['plain'] / t:>7.3f}"
        )


def main():
    parser = fit_parser()
    parser.add_argument("--models", default="mlp,cnn")
    parser.add_argument("--step-cost", action="store_true")
    args = parser.parse_args()
    use_threads(args.threads)
    if args.step_cost:
        return step_cost(args.rounds)
    if args.quick:
        args.samples = 10240
    rng = np.random.RandomState(0)
    header = run_header(
        args.threads,
        f"{args.samples} samples, batch {args.batch}, {args.rounds} rounds",
    )
    print(header)
    table = variants()
    out = {"header": header}
    for name in args.models.split(","):
        if name == "mlp":
            x = rng.normal(size=(args.samples, 20)).astype("float32")
            make = lambda n, spe: build(spe, {})  # noqa: E731
        else:
            # more than two execution blocks of 32 steps (two untimed)
            samples = max(args.samples // 4, (2 * 32 + 1) * args.batch)
            x = rng.normal(size=(samples, 16, 16, 3)).astype("float32")
            make = lambda n, spe: build_cnn(spe)  # noqa: E731
        y = rng.randint(0, 10, size=len(x))
        print(f"\n== {name}")
        FIT_SECONDS.clear()
        out[name] = run_rounds(table, make, x, y, args, measure)
        best_of(out[name], table)
        print("\nwhole fit(epochs=1), median seconds (traces included)")
        for key, seconds in sorted(FIT_SECONDS.items()):
            print(f"spe={key[0]:<3} {key[1]}({key[2] or ''}) "
                  f"{np.median(seconds[1:] or seconds):.3f} s")  # fmt: skip
    write_json(args.json, out)


if __name__ == "__main__":
    main()
