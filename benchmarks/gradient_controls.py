"""Throughput of `GradientAccumulationScheduler` and `GradientNoise`.

Same MLP and protocol as `callback_overhead.py` (variants interleaved in
rotating order, one short `fit(epochs=1)` each per round, the first
execution block of every fit untimed). Steps are batches of `fit`
(micro-batches under accumulation). Ratios, each against a baseline
measured in the same rounds:

* `GradientAccumulationScheduler({0: k})` against Keras's own fixed
  `gradient_accumulation_steps=k` (target >= 0.95);
* `GradientAccumulationScheduler({0: 1})` against plain `fit`
  (target >= 0.98);
* `GradientNoise(0.01)` against plain `fit` (target >= 0.95).

Usage:
    KERAS_BACKEND=tensorflow python benchmarks/gradient_controls.py
    python benchmarks/gradient_controls.py --rounds 2 --quick   # smoke test
"""

import os
import statistics
import sys

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
from callback_overhead import measure  # noqa: E402

import keras_trainplus as ktp  # noqa: E402

C = ktp.callbacks


def variants(k):
    """name -> (optimizer kwargs, callbacks factory, baseline name)."""
    return {
        "plain": ({}, lambda: [], None),
        f"keras accumulation k={k}": (
            {"gradient_accumulation_steps": k},
            lambda: [],
            None,
        ),
        f"scheduled accumulation k={k}": (
            {},
            lambda: [C.GradientAccumulationScheduler({0: k})],
            f"keras accumulation k={k}",
        ),
        "scheduled accumulation k=1": (
            {},
            lambda: [C.GradientAccumulationScheduler({0: 1})],
            "plain",
        ),
        "GradientNoise(0.01)": (
            {},
            lambda: [C.GradientNoise(0.01, seed=0)],
            "plain",
        ),
    }


def build(spe, optimizer_kwargs):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((20,)),
            keras.layers.Dense(256, activation="relu"),
            keras.layers.Dense(256, activation="relu"),
            keras.layers.Dense(10),
        ]
    )
    model.compile(
        keras.optimizers.SGD(1e-2, momentum=0.9, **optimizer_kwargs),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        steps_per_execution=spe,
    )
    return model


def report(spe, rates, table):
    print(f"\nsteps_per_execution={spe}")
    print(
        f"{'variant':<30} {'median steps/s':>14} {'baseline':<26} "
        f"{'ratio of medians':>16} {'p10-p90 round ratio':>19}"
    )
    for name, (_, _, base) in table.items():
        med = statistics.median(rates[name])
        if base is None:
            print(f"{name:<30} {med:>14.0f}")
            continue
        ratios = [a / b for a, b in zip(rates[name], rates[base])]
        p10, p90 = np.percentile(ratios, [10, 90])
        print(
            f"{name:<30} {med:>14.0f} {base:<26} "
            f"{med / statistics.median(rates[base]):>16.3f} "
            f"{p10:>9.3f}-{p90:<6.3f}"
        )


def main():
    parser = fit_parser()
    parser.add_argument("--k", type=int, default=4)
    args = parser.parse_args()
    use_threads(args.threads)
    if args.quick:
        args.samples = 6400
    x, y = mlp_data(args.samples)
    header = run_header(
        args.threads,
        f"{args.samples} samples, batch {args.batch}, k={args.k}, "
        f"{args.rounds} rounds",
    )
    print(header)
    table = variants(args.k)
    results = run_rounds(
        table, lambda n, spe: build(spe, table[n][0]), x, y, args
    )
    write_json(args.json, {"header": header, "results": results})


def run_rounds(table, make_model, x, y, args, measure=measure):
    """Every variant of `table` (name -> (options, callbacks factory,
    baseline)) at each steps_per_execution, in rotating order for
    `args.rounds` rounds after one warm-up round; prints the report and
    returns ``{spe: {name: [steps/s per round]}}``. `measure(model,
    callbacks, x, y, batch)` times one fit."""
    names = list(table)
    results = {}
    spes = (1,) if keras.backend.backend() == "torch" else (1, 32)
    for spe in spes:
        models = {n: make_model(n, spe) for n in names}
        rates = {n: [] for n in names}
        for r in range(args.rounds + 1):
            order = names[r % len(names) :] + names[: r % len(names)]
            for name in order:
                rate = measure(models[name], table[name][1](), x, y, args.batch)
                if r:  # round 0 warms up
                    rates[name].append(rate)
        results[spe] = rates
        report(spe, rates, table)
    return results


if __name__ == "__main__":
    main()
