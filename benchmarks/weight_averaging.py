"""Throughput of weight averaging.

Same MLP and protocol as `gradient_controls.py` (SGD with momentum,
variants interleaved in rotating order, one short `fit(epochs=1)` each per
round, the first execution block of every fit untimed). Ratios:

* Keras's own EMA (``SGD(..., use_ema=True)``) against plain `fit`
  (recorded);
* `WeightEMA(0.999)`, averaged after every update, against Keras's
  ``use_ema=True`` (target >= 0.98: ours must not be slower) and against
  plain `fit` (recorded);
* `StochasticWeightAveraging` from epoch 0, with ``swa_lrs=None`` (no
  per-update cost: the average is taken at the epoch end) and with
  ``swa_lrs=0.01`` (its in-graph LR program) against plain `fit`.

With `--update-cost` it times the train step alone in a compiled loop
(plain, Keras's `use_ema=True`, `WeightEMA`'s step), best of `--rounds`:
the per-update cost without `fit`'s noise.

Usage:
    KERAS_BACKEND=tensorflow python benchmarks/weight_averaging.py
    KERAS_BACKEND=tensorflow python benchmarks/weight_averaging.py --update-cost
    python benchmarks/weight_averaging.py --rounds 2 --quick   # smoke test
"""

import os
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import best_per_step  # noqa: E402
from _common import fit_parser  # noqa: E402
from _common import header as run_header  # noqa: E402
from _common import mlp_data  # noqa: E402
from _common import use_threads  # noqa: E402
from _common import write_json  # noqa: E402
from gradient_controls import build  # noqa: E402
from gradient_controls import run_rounds  # noqa: E402

import keras_trainplus as ktp  # noqa: E402

C = ktp.callbacks


class Unshare(keras.callbacks.Callback):
    """Keras's `use_ema` leaves each weight sharing its buffer with its
    average after `fit`; on JAX the next `fit` then fails ("donate the
    same buffer twice"). Copying the weights first works around it."""

    def on_train_begin(self, logs=None):
        for variable in self.model.trainable_variables:
            variable.assign(keras.ops.copy(variable.value))


def variants():
    """name -> (optimizer kwargs, callbacks factory, baseline name)."""
    return {
        "plain": ({}, lambda: [], None),
        "Keras use_ema=True": ({"use_ema": True}, lambda: [Unshare()], "plain"),
        "WeightEMA(0.999)": (
            {},
            lambda: [C.WeightEMA(0.999)],
            "Keras use_ema=True",
        ),
        "WeightEMA(0.999) vs plain": (
            {},
            lambda: [C.WeightEMA(0.999)],
            "plain",
        ),
        "SWA(swa_lrs=None)": (
            {},
            lambda: [C.StochasticWeightAveraging(swa_epoch_start=0)],
            "plain",
        ),
        "SWA(swa_lrs=0.01)": (
            {},
            lambda: [C.StochasticWeightAveraging(0.01, 0, annealing_epochs=1)],
            "plain",
        ),
    }


def _compiled_steps(model, steps, batch=64):
    """A function running `steps` train steps of `model` in one compiled
    loop (torch: a Python loop, as its `fit` runs eagerly)."""
    rng = np.random.RandomState(1)
    x = keras.ops.convert_to_tensor(rng.normal(size=(batch, 20)), "float32")
    y = keras.ops.convert_to_tensor(rng.randint(0, 10, size=batch), "int32")
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        state = tuple(
            [v.value for v in vs]
            for vs in (
                model.trainable_variables,
                model.non_trainable_variables,
                model.optimizer.variables,
                model.metrics_variables,
            )
        )

        @jax.jit
        def run_jax(state):
            def body(i, state):
                return model.train_step(state, (x, y))[1]

            return jax.lax.fori_loop(0, steps, body, state)

        run_jax(state)
        return lambda: jax.block_until_ready(run_jax(state))
    if backend == "torch":

        def run_torch():
            for _ in range(steps):
                model.train_step((x, y))

        run_torch()
        return run_torch
    import tensorflow as tf

    @tf.function
    def run():
        for _ in tf.range(steps):
            model.train_step((x, y))

    run()
    return run


def update_cost(rounds, steps=None):

    from keras_trainplus.knobs._weight_ema import WeightEMAProgram

    steps = steps or (200 if keras.backend.backend() == "torch" else 1000)
    loops = {}
    for name, kwargs in (
        ("plain", {}),
        ("Keras use_ema=True", {"use_ema": True}),
        ("WeightEMA(0.999)", {}),
    ):
        model = build(1, kwargs)
        model.optimizer.build(model.trainable_variables)
        if name.startswith("WeightEMA"):
            WeightEMAProgram(model, 0.999).install()
        loops[name] = _compiled_steps(model, steps)
    best = best_per_step(loops, rounds, steps)
    print(f"\ntrain step alone, best of {rounds} x {steps} steps")
    print(
        f"{'variant':<20} {'us/step':>8} {'extra us':>8} {'steps/s ratio':>13}"
    )
    for n, t in best.items():
        extra = (t - best["plain"]) * 1e6
        print(
            f"{n:<20} {t * 1e6:>8.1f} {extra:>8.1f} {best['plain'] / t:>13.3f}"
        )
    ratio = best["Keras use_ema=True"] / best["WeightEMA(0.999)"]
    print(f"WeightEMA vs Keras use_ema: {ratio:.3f} of its steps/s")


def best_of(results, table):
    """The fastest round of each variant against its baseline's fastest:
    less sensitive than medians to a preempted vCPU (slow rounds)."""
    for spe, rates in results.items():
        print(f"\nbest of rounds, steps_per_execution={spe}")
        for name, (_, _, base) in table.items():
            if base is not None:
                ratio = max(rates[name]) / max(rates[base])
                print(f"{name:<30} vs {base:<22} {ratio:.3f}")


def main():
    parser = fit_parser()
    parser.add_argument("--update-cost", action="store_true")
    args = parser.parse_args()
    use_threads(args.threads)
    if args.update_cost:
        return update_cost(args.rounds)
    if args.quick:
        args.samples = 6400
    x, y = mlp_data(args.samples)
    header = run_header(
        args.threads,
        f"{args.samples} samples, batch {args.batch}, {args.rounds} rounds",
    )
    print(header)
    table = variants()
    results = run_rounds(
        table, lambda n, spe: build(spe, table[n][0]), x, y, args
    )
    best_of(results, table)
    write_json(args.json, {"header": header, "results": results})


if __name__ == "__main__":
    main()
