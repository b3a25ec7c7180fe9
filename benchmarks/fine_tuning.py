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

With `--update-cost` it times `optimizer.apply` alone for
the MLP's six variables in a compiled loop (as `schedule_cost.py`): Adam
plain against multipliers on every layer (constant, freezable, frozen),
best of `--rounds`; the extra microseconds per update are a fixed cost,
independent of the batch, that the noisy `fit` ratios cannot resolve.

Usage:
    KERAS_BACKEND=tensorflow python benchmarks/fine_tuning.py
    KERAS_BACKEND=tensorflow python benchmarks/fine_tuning.py --update-cost
    python benchmarks/fine_tuning.py --rounds 2 --quick   # smoke test
"""

import os
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import best_per_step  # noqa: E402
from _common import fit_parser  # noqa: E402
from _common import header as run_header  # noqa: E402
from _common import mlp_data  # noqa: E402
from _common import use_threads  # noqa: E402
from _common import write_json  # noqa: E402
from gradient_controls import run_rounds  # noqa: E402

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


def _compiled_updates(opt, variables, steps):
    """A function running `steps` updates of `opt` in one compiled loop."""
    if keras.backend.backend() == "jax":
        import jax

        grads = [jax.numpy.ones(v.shape) for v in variables]
        state = ([v.value for v in variables], [v.value for v in opt.variables])

        @jax.jit
        def run_jax(state):
            def body(i, carry):
                return opt.stateless_apply(carry[1], grads, carry[0])

            return jax.lax.fori_loop(0, steps, body, state)

        run_jax(state)
        return lambda: jax.block_until_ready(run_jax(state))
    if keras.backend.backend() == "torch":  # eager: a Python loop
        grads = [keras.ops.ones(v.shape) for v in variables]

        def run_torch():
            for _ in range(steps):
                opt.apply(grads, variables)

        run_torch()
        return run_torch
    import tensorflow as tf

    grads = [tf.ones(v.shape) for v in variables]

    @tf.function
    def run():
        for _ in tf.range(steps):
            opt.apply(grads, variables)

    run()
    return run


def update_cost(rounds, steps=None):
    steps = steps or (300 if keras.backend.backend() == "torch" else 2000)

    from keras_trainplus.knobs.lr_multiplier import LRMultiplierKnob

    S = ktp.schedules

    def loop(schedule, value=None):
        model = build(1)
        opt = model.optimizer
        variables = model.trainable_variables
        opt.build(variables)
        if schedule is not None:
            for name in LAYERS:
                knob = LRMultiplierKnob(model, name)
                knob.install(schedule, offset=0)
                if value is not None:  # the driver's per-epoch write
                    knob.set_base(value)
        return _compiled_updates(opt, variables, steps)

    loops = {
        "plain Adam": loop(None),
        "constant 0.5, all layers": loop(S.Constant(0.5)),
        "freezable, all layers": loop(S.PerEpoch([0.5]), 0.5),
        "frozen (0), all layers": loop(S.PerEpoch([0.0]), 0.0),
    }
    best = best_per_step(loops, rounds, steps)
    base = best["plain Adam"]
    print(f"\noptimizer.apply alone, best of {rounds} x {steps} updates")
    print(f"{'variant':<26} {'us/update':>9} {'extra us':>8}")
    for n, t in best.items():
        print(f"{n:<26} {t * 1e6:>9.1f} {(t - base) * 1e6:>8.1f}")


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
    results = run_rounds(table, lambda n, spe: build(spe), x, y, args)
    write_json(args.json, {"header": header, "results": results})


if __name__ == "__main__":
    main()
