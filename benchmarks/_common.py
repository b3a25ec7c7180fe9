"""What the benchmark scripts share: the `fit`-throughput arguments, one
TensorFlow thread (far less noisy ratios on this VM), the run header and
the JSON output. Scripts import it after putting their folder on
`sys.path`."""

import argparse
import json
import os
import platform
import time

import keras
import numpy as np

import keras_trainplus as ktp


def add_threads(parser):
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="TF intra/inter-op threads (0: TF default); one thread makes "
        "the ratios far less noisy",
    )


def fit_parser(rounds=15, samples=20480, description=None):
    """`--rounds`, `--samples`, `--batch` (64), `--quick`, `--threads`
    and `--json`: the arguments of the `fit`-throughput benchmarks."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--rounds", type=int, default=rounds)
    parser.add_argument("--samples", type=int, default=samples)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument(
        "--quick", action="store_true", help="smoke mode: fewer samples"
    )
    add_threads(parser)
    parser.add_argument("--json", help="write raw results here")
    return parser


def use_threads(threads):
    """Sets TensorFlow's thread pools (other backends: nothing)."""
    if keras.backend.backend() == "tensorflow" and threads:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)


def header(threads, details):
    """One line naming the versions, the machine, the threads and
    `details` (the run's sizes)."""
    return (
        f"keras {keras.__version__}, backend {keras.backend.backend()}, "
        f"keras_trainplus {ktp.__version__}, "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} "
        f"CPUs, threads={threads or 'default'}; {details}"
    )


def write_json(path, result):
    if path:
        with open(path, "w") as f:
            json.dump(result, f, indent=1)


def mlp_data(samples):
    """The MLP benchmarks' data: `samples` x 20 normal features, 10
    classes (seed 0)."""
    rng = np.random.RandomState(0)
    x = rng.normal(size=(samples, 20)).astype("float32")
    y = rng.randint(0, 10, size=samples)
    return x, y


def best_per_step(loops, rounds, steps):
    """``{name: seconds}``: the fastest of `rounds` calls of each loop
    (a function running `steps` steps), divided by `steps`. Rounds rotate
    the order of the loops, so none always runs first."""
    best = {n: float("inf") for n in loops}
    names = list(loops)
    for r in range(rounds):
        for n in names[r % len(names) :] + names[: r % len(names)]:
            start = time.perf_counter()
            loops[n]()
            best[n] = min(best[n], (time.perf_counter() - start) / steps)
    return best
