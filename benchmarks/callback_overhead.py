"""Throughput of `fit` with keras_trainplus schedule callbacks vs. none.

Measures training steps per second of the same model with each callback and
without any callback, in the same run, at steps_per_execution 1 and 32
(torch: 1 only).

This machine's speed drifts by several percent from second to second, so
the variants are interleaved finely: each variant keeps its own model and
callbacks, and every round runs one short `fit(epochs=1)` per variant in
rotating order. Only the steps after the first execution block are timed
(the first block includes the trace of the train function, which these
callbacks redo once per `fit` call). Per variant we report the median
steps/s, and against the no-callback baseline:

* `ratio of medians`: median steps/s of the variant / median steps/s of
  the baseline (the target is >= 0.98);
* `median round ratio`: median over rounds of variant / baseline of the
  same round, with its 10th-90th percentile range, to show the noise.

Usage:
    KERAS_BACKEND=tensorflow python benchmarks/callback_overhead.py
    python benchmarks/callback_overhead.py --rounds 2 --quick   # smoke test
    python benchmarks/callback_overhead.py --report results/x.json
"""

import json
import os
import statistics
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import fit_parser  # noqa: E402
from _common import header as run_header  # noqa: E402
from _common import mlp_data  # noqa: E402
from _common import use_threads  # noqa: E402
from _common import write_json  # noqa: E402

import keras_trainplus as ktp  # noqa: E402
from keras_trainplus import schedules as S  # noqa: E402


def variants(steps_per_epoch):
    return {
        "none": lambda: [],
        "CyclicLR": lambda: [
            ktp.callbacks.CyclicLR(1e-3, 1e-2, step_size_up=2 * steps_per_epoch)
        ],
        "OneCycleLR": lambda: [ktp.callbacks.OneCycleLR(1e-2)],
        "WarmupDecayLR": lambda: [
            ktp.callbacks.WarmupDecayLR(1e-2, 0.1, "cosine")
        ],
        "PerEpoch*warmup": lambda: [
            ktp.callbacks.HyperparameterScheduler(
                {
                    "learning_rate": S.PerEpoch([1e-2, 5e-3, 2e-3])
                    * S.Linear(0.1, 1.0, steps_per_epoch)
                }
            )
        ],
    }


def build(spe):
    model = keras.Sequential(
        [
            keras.Input((20,)),
            keras.layers.Dense(256, activation="relu"),
            keras.layers.Dense(256, activation="relu"),
            keras.layers.Dense(10),
        ]
    )
    model.compile(
        keras.optimizers.SGD(1e-2, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        steps_per_execution=spe,
    )
    return model


class BlockTimer(keras.callbacks.Callback):
    """Times an epoch from the start of its execution block number
    ``untimed_blocks + 1`` (the first blocks trace the train function)."""

    def __init__(self, untimed_blocks=1):
        super().__init__()
        self.untimed_blocks = untimed_blocks

    def on_epoch_begin(self, epoch, logs=None):
        self.start, self.blocks = None, 0

    def on_train_batch_begin(self, batch, logs=None):
        self.blocks += 1
        if self.blocks == self.untimed_blocks + 1:
            self.start, self.start_batch = time.perf_counter(), batch

    def on_epoch_end(self, epoch, logs=None):
        self.seconds = time.perf_counter() - self.start


def measure(model, callbacks, x, y, batch, untimed_blocks=1):
    """steps/s of one `fit(epochs=1)`, its first `untimed_blocks`
    execution blocks untimed."""
    timer = BlockTimer(untimed_blocks)
    model.fit(
        x,
        y,
        batch_size=batch,
        epochs=1,
        verbose=0,
        callbacks=callbacks + [timer],
    )
    steps = int(np.ceil(len(x) / batch)) - timer.start_batch
    return steps / timer.seconds


def report(spe, rates):
    names = list(rates)
    base = statistics.median(rates["none"])
    ratios = {
        n: [a / b for a, b in zip(rates[n], rates["none"])] for n in names
    }
    print(f"\nsteps_per_execution={spe}")
    print(
        f"{'variant':<16} {'median steps/s':>14} {'ratio of medians':>16} "
        f"{'median round ratio':>18} {'p10-p90':>13}"
    )
    for n in names:
        p10, p90 = np.percentile(ratios[n], [10, 90])
        med = statistics.median(rates[n])
        print(
            f"{n:<16} {med:>14.0f} {med / base:>16.3f} "
            f"{statistics.median(ratios[n]):>18.3f} "
            f"{p10:>6.3f}-{p90:<6.3f}"
        )


def main():
    # --samples a multiple of the batch size: a partial last batch has
    # another shape, which JAX compiles separately (inside the timed window
    # on the first fit of every rebuilt train function).
    parser = fit_parser(rounds=25)
    parser.add_argument("--report", help="print the tables of a saved JSON")
    args = parser.parse_args()
    if args.report:
        with open(args.report) as f:
            saved = json.load(f)
        print(saved["header"])
        for spe, res in saved["results"].items():
            report(spe, res["steps_per_s"])
        return
    use_threads(args.threads)
    if args.quick:
        args.samples = 6400  # 100 steps of 64
    x, y = mlp_data(args.samples)
    steps = int(np.ceil(args.samples / args.batch))
    backend = keras.backend.backend()
    spes = (1,) if backend == "torch" else (1, 32)
    names = list(variants(steps))
    results = {}
    header = run_header(
        args.threads,
        f"{args.samples} samples, batch {args.batch} ({steps} steps/epoch), "
        f"{args.rounds} rounds",
    )
    print(header)
    for spe in spes:
        models, callbacks = {}, {}
        for name, make in variants(steps).items():
            keras.utils.set_random_seed(0)
            models[name], callbacks[name] = build(spe), make()
        rates = {n: [] for n in names}
        for r in range(args.rounds + 1):
            order = names[r % len(names) :] + names[: r % len(names)]
            for name in order:
                rate = measure(models[name], callbacks[name], x, y, args.batch)
                if r:  # round 0 warms up (first trace of every model)
                    rates[name].append(rate)
        results[spe] = {"steps_per_s": rates}
        report(spe, rates)
    write_json(
        args.json,
        {
            "header": header,
            "backend": backend,
            "keras": keras.__version__,
            "args": vars(args),
            "results": {str(k): v for k, v in results.items()},
        },
    )


if __name__ == "__main__":
    main()
