"""Per-step cost of in-graph schedules inside the optimizer update (TF).

Times `optimizer.apply` for an MLP's six variables (20-256-256-10) in a
compiled loop of `--steps` updates: plain SGD(momentum) against the same
optimizer with keras_trainplus learning-rate (and momentum) programs. The
variants are interleaved and each is repeated `--repeats` times; the best
time of each is kept (interference only slows a run down), and the extra
microseconds per update are printed, with the ratio
``plain / variant`` of the update alone (an upper bound on the slowdown of a
whole train step, which also runs the forward and backward passes).

Usage: python benchmarks/schedule_cost.py [--repeats 15] [--steps 3000]
"""

import argparse
import os
import sys

os.environ["KERAS_BACKEND"] = "tensorflow"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import add_threads  # noqa: E402
from _common import best_per_step  # noqa: E402
from _common import use_threads  # noqa: E402

from keras_trainplus import schedules as S  # noqa: E402
from keras_trainplus.knobs.learning_rate import LearningRateKnob  # noqa: E402
from keras_trainplus.knobs.optimizer_attribute import OptimizerAttributeKnob  # noqa: E402

SHAPES = [(20, 256), (256,), (256, 256), (256,), (256, 10), (10,)]
T = 10**6


def programs():
    one = (S.OneCycle(0.1, T), S.OneCycle.momentum(0.85, 0.95, T))
    cyc = (S.Cyclical(1e-3, 1e-2, 2000), S.Cyclical(0.9, 0.8, 2000))
    warm = S.Join([S.Linear(0.0, 1e-2, 1000), S.Cosine(1e-2, 0.0, T)], [1000])
    return {
        "plain": (None, None),
        "OneCycle lr": (one[0], None),
        "OneCycle lr+momentum": one,
        "Cyclical lr": (cyc[0], None),
        "Cyclical lr+momentum": cyc,
        "warmup+cosine lr": (warm, None),
        "PerEpoch*warmup lr": (S.BaseValue() * S.Linear(0.1, 1.0, 1000), None),
    }


def make_loop(lr, mom, steps):
    # The knobs the driver installs, on a model whose variables have the
    # MLP's shapes (no fit: only the optimizer update is timed).
    model = keras.Sequential(
        [
            keras.Input((20,)),
            keras.layers.Dense(256),
            keras.layers.Dense(256),
            keras.layers.Dense(10),
        ]
    )
    opt = keras.optimizers.SGD(1e-2, momentum=0.9)
    model.compile(optimizer=opt, loss="mse")
    variables = model.trainable_variables
    grads = [tf.ones(v.shape) for v in variables]
    opt.build(variables)
    if lr is not None:
        LearningRateKnob(model).install(lr, offset=0)
    if mom is not None:
        OptimizerAttributeKnob(model, "momentum").install(mom, offset=0)

    @tf.function
    def loop():
        for _ in tf.range(steps):
            opt.apply(grads, variables)

    loop()  # trace
    return loop


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--steps", type=int, default=3000)
    add_threads(parser)
    args = parser.parse_args()
    use_threads(args.threads)
    loops = {
        n: make_loop(lr, mom, args.steps) for n, (lr, mom) in programs().items()
    }
    best = best_per_step(loops, args.repeats, args.steps)
    base = best["plain"]
    print(
        f"keras {keras.__version__}, TF {tf.__version__}, threads="
        f"{args.threads}; best of {args.repeats} x {args.steps} updates"
    )
    print(
        f"{'variant':<24} {'us/update':>9} {'extra us':>8} {'update ratio':>12}"
    )
    for n, t in best.items():
        print(
            f"{n:<24} {t * 1e6:>9.1f} {(t - base) * 1e6:>8.1f} "
            f"{base / t:>12.3f}"
        )


if __name__ == "__main__":
    main()
