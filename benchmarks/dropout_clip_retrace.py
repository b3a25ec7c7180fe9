"""50 epochs with dropout rates and a clip threshold that change every epoch.

For each variant a fresh process trains an MLP (two stock Dropout layers)
for `--epochs` epochs and reports: train-function traces after epoch 1
(counted by a layer whose Python `call` runs once per trace), resident
memory after epoch 1 and its peak at the end, and steps/s (median over
epochs 2..N).

* `baseline`: no callback (fixed rates, no clipping).
* `keras_trainplus`: `DropoutScheduler` + `GradientClipScheduler`, both
  changing every epoch.
* `naive retrace`: a callback that sets `layer.rate` and
  `optimizer.global_clipnorm` and calls `make_train_function(force=True)`
  every epoch, the only way stock Keras takes such changes into account.

Targets for keras_trainplus: 0 retraces after epoch 1, peak RSS growth
<= 2%, steps/s >= 0.98 of the baseline. Variants run in alternating order
for `--rounds` rounds (the naive one once); per-epoch times are pooled.

Usage: KERAS_BACKEND=tensorflow python benchmarks/dropout_clip_retrace.py
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

VARIANTS = ("baseline", "keras_trainplus", "naive retrace")


def rss_mb(field="VmRSS"):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def worker(variant, epochs, threads, samples=8192):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import numpy as np

    import keras_trainplus as ktp

    if keras.backend.backend() == "tensorflow" and threads:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)

    class TraceCounter(keras.layers.Layer):
        count = 0

        def call(self, x):
            TraceCounter.count += 1
            return x

    keras.utils.set_random_seed(0)
    inp = keras.Input((64,))
    h = keras.layers.Dense(256, activation="relu")(TraceCounter()(inp))
    h = keras.layers.Dropout(0.1)(h)
    h = keras.layers.Dense(256, activation="relu")(h)
    h = keras.layers.Dropout(0.1)(h)
    model = keras.Model(inp, keras.layers.Dense(10)(h))
    model.compile(
        keras.optimizers.SGD(0.01, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    rng = np.random.RandomState(0)
    x = rng.normal(size=(samples, 64)).astype("float32")
    y = rng.randint(0, 10, size=samples)
    rates = {e: 0.1 + 0.3 * (e % 4) / 3 for e in range(epochs)}
    clips = {e: (1.0 + e % 3) if e % 5 else None for e in range(epochs)}

    class Naive(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            for layer in self.model.layers:
                if isinstance(layer, keras.layers.Dropout):
                    layer.rate = rates[epoch]
            self.model.optimizer.global_clipnorm = clips[epoch]
            self.model.make_train_function(force=True)

    class Probe(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.times = []

        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.times.append(time.perf_counter() - self.start)
            if epoch == 0:
                self.traces_after_first = TraceCounter.count
                self.rss_after_first = rss_mb()

    callbacks = {
        "baseline": [],
        "keras_trainplus": [
            ktp.callbacks.DropoutScheduler(rates),
            ktp.callbacks.GradientClipScheduler(clips),
        ],
        "naive retrace": [Naive()],
    }[variant]
    probe = Probe()
    model.fit(
        x,
        y,
        batch_size=64,
        epochs=epochs,
        verbose=0,
        callbacks=callbacks + [probe],
    )
    return {
        "retraces_after_epoch_1": TraceCounter.count - probe.traces_after_first,
        "rss_after_epoch_1_mb": probe.rss_after_first,
        "peak_rss_mb": rss_mb("VmHWM"),
        "epoch_seconds": probe.times[1:],
        "steps_per_epoch": samples // 64,
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--samples", type=int, default=8192)
    parser.add_argument("--json")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(
            "RESULT "
            + json.dumps(
                worker(args.worker, args.epochs, args.threads, args.samples)
            )
        )
        return

    def run(variant):
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--worker",
                variant,
                "--epochs",
                str(args.epochs),
                "--samples",
                str(args.samples),
                "--threads",
                str(args.threads),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        line = [
            ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")
        ][-1]
        return json.loads(line[len("RESULT ") :])

    results = {v: [] for v in VARIANTS}
    for r in range(args.rounds):
        order = ["baseline", "keras_trainplus"]
        for variant in order if r % 2 == 0 else order[::-1]:
            results[variant].append(run(variant))
    results["naive retrace"].append(run("naive retrace"))

    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    print(
        f"backend {backend}, {args.epochs} epochs of "
        f"{args.samples // 64} steps, "
        f"{args.rounds} rounds, threads={args.threads}"
    )
    base = statistics.median(
        t for res in results["baseline"] for t in res["epoch_seconds"]
    )
    print(
        f"{'variant':<16} {'retraces':>8} {'RSS@1 MB':>9} {'peak MB':>8} "
        f"{'growth':>7} {'steps/s':>8} {'ratio':>6}"
    )
    for variant in VARIANTS:
        runs = results[variant]
        med = statistics.median(t for res in runs for t in res["epoch_seconds"])
        growth = max(
            res["peak_rss_mb"] / res["rss_after_epoch_1_mb"] - 1 for res in runs
        )
        print(
            f"{variant:<16} "
            f"{max(res['retraces_after_epoch_1'] for res in runs):>8} "
            f"{runs[0]['rss_after_epoch_1_mb']:>9.0f} "
            f"{max(res['peak_rss_mb'] for res in runs):>8.0f} "
            f"{100 * growth:>6.1f}% "
            f"{runs[0]['steps_per_epoch'] / med:>8.0f} {base / med:>6.3f}"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {"backend": backend, "args": vars(args), "results": results},
                f,
                indent=1,
            )


if __name__ == "__main__":
    main()
