"""Throughput of `fit` with keras_trainplus schedule callbacks vs. none.

Measures training steps per second of the same model with each callback and
without any callback, in the same run, at steps_per_execution 1 and 32
(torch: 1 only). Variants are interleaved in every round (rotating order);
each fit runs `--epochs` epochs and every epoch after the first (which
traces the train function) is timed on its own.

Two ratios against the no-callback baseline are printed:

* `best ratio`: best epoch of the variant / best epoch of the baseline.
  Interference from other work on the machine only ever slows an epoch
  down, so the best epochs are the most faithful estimate of the cost
  (target: >= 0.98).
* `median ratio`: median over rounds of (variant / baseline of the same
  round), with its min and max, to show the noise.

Usage:
    KERAS_BACKEND=tensorflow python benchmarks/callback_overhead.py
    python benchmarks/callback_overhead.py --rounds 2 --epochs 2 --quick
"""

import argparse
import json
import os
import platform
import statistics
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_trainplus as ktp  # noqa: E402
from keras_trainplus import schedules as S  # noqa: E402


class EpochTimer(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.times = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.perf_counter() - self._start)


def variants(steps_per_epoch):
    return {
        "none": lambda: [],
        "CyclicLR": lambda: [ktp.callbacks.CyclicLR(
            1e-3, 1e-2, step_size_up=2 * steps_per_epoch)],
        "OneCycleLR": lambda: [ktp.callbacks.OneCycleLR(1e-2)],
        "WarmupDecayLR": lambda: [ktp.callbacks.WarmupDecayLR(
            1e-2, 0.1, "cosine")],
        "PerEpoch*warmup": lambda: [ktp.callbacks.HyperparameterScheduler(
            {"learning_rate": S.PerEpoch([1e-2, 5e-3, 2e-3])
             * S.Linear(0.1, 1.0, steps_per_epoch)})],
    }


def build(spe):
    model = keras.Sequential([
        keras.Input((20,)),
        keras.layers.Dense(256, activation="relu"),
        keras.layers.Dense(256, activation="relu"),
        keras.layers.Dense(10),
    ])
    model.compile(keras.optimizers.SGD(1e-2, momentum=0.9),
                  loss=keras.losses.SparseCategoricalCrossentropy(
                      from_logits=True),
                  steps_per_execution=spe)
    return model


def measure(make_callbacks, spe, x, y, batch, epochs):
    keras.utils.set_random_seed(0)
    model = build(spe)
    timer = EpochTimer()
    model.fit(x, y, batch_size=batch, epochs=epochs, verbose=0,
              callbacks=make_callbacks() + [timer])
    steps = int(np.ceil(len(x) / batch))
    return [steps / t for t in timer.times[1:]]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--samples", type=int, default=20000)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--quick", action="store_true",
                        help="smoke mode: 2000 samples")
    parser.add_argument("--threads", type=int, default=1,
                        help="TF intra/inter-op threads (0: TF default); "
                        "one thread makes the ratios far less noisy")
    parser.add_argument("--json", help="write raw results here")
    args = parser.parse_args()
    if keras.backend.backend() == "tensorflow" and args.threads:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    if args.quick:
        args.samples = 2000
    rng = np.random.RandomState(0)
    x = rng.normal(size=(args.samples, 20)).astype("float32")
    y = rng.randint(0, 10, size=args.samples)
    steps = int(np.ceil(args.samples / args.batch))
    backend = keras.backend.backend()
    spes = (1,) if backend == "torch" else (1, 32)
    names = list(variants(steps))
    results = {}
    print(f"keras {keras.__version__}, backend {backend}, keras_trainplus "
          f"{ktp.__version__}, {platform.processor() or platform.machine()},"
          f" {os.cpu_count()} CPUs, threads={args.threads or 'default'}; "
          f"{args.samples} samples, batch "
          f"{args.batch} ({steps} steps/epoch), {args.epochs - 1} timed "
          f"epochs, {args.rounds} rounds")
    for spe in spes:
        make = variants(steps)
        rates = {n: [] for n in names}
        for r in range(args.rounds):
            order = names[r % len(names):] + names[:r % len(names)]
            for name in order:
                rates[name].append(measure(make[name], spe, x, y, args.batch,
                                           args.epochs))
        per_fit = {n: [statistics.mean(r) for r in rates[n]] for n in names}
        best = {n: max(max(r) for r in rates[n]) for n in names}
        ratios = {n: [a / b for a, b in zip(per_fit[n], per_fit["none"])]
                  for n in names}
        results[spe] = {"epoch_steps_per_s": rates, "best": best,
                        "round_ratios": ratios}
        print(f"\nsteps_per_execution={spe}")
        print(f"{'variant':<16} {'best steps/s':>12} {'best ratio':>10} "
              f"{'median ratio':>12} {'min':>6} {'max':>6}")
        for n in names:
            print(f"{n:<16} {best[n]:>12.0f} {best[n] / best['none']:>10.3f} "
                  f"{statistics.median(ratios[n]):>12.3f} "
                  f"{min(ratios[n]):>6.3f} {max(ratios[n]):>6.3f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"backend": backend, "keras": keras.__version__,
                       "args": vars(args),
                       "results": {str(k): v for k, v in results.items()}},
                      f, indent=1)


if __name__ == "__main__":
    main()
