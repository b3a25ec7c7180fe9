"""`LengthBatcher`: padding and batch shapes of each ordering against
random batching, and training speed against random batching, in the
same run.

Lengths: log-normal utterance lengths in frames (10 ms), median 800
(8 s) and sigma 0.5, clipped to 50-3500: LibriSpeech-like. Random
batching is a random permutation cut into batches of `--batch-size`,
each padded to its longest sequence (what a bucket-free `tf.data`
`padded_batch` does).

Part 1 (NumPy only): padded frames, padding share, batches and distinct
batch shapes per epoch for random, laplace and sorted orderings, with a
sequence cap and with a frame cap (`max_tokens`), and with
`pad_to_multiple_of`. Target (issue 17): laplace's padded frames
(padding only) at most 1/5 of random batching's.

Part 2 (`--train`): one epoch of a small conv model on 40-dim features
(lengths scaled by `--scale`) with each batching, ratio of sequences/s
(median of `--rounds` interleaved rounds after `--warmup` untimed epochs,
in which every padded length has been traced and compiled).

Usage: KERAS_BACKEND=<backend> python benchmarks/length_batching.py
           [--train] [--rounds 3] [--json out.json]
"""

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import add_threads  # noqa: E402
from _common import use_threads  # noqa: E402
from _common import write_json  # noqa: E402

from keras_trainplus.data import LengthBatcher  # noqa: E402


def lengths_of(n, seed=0):
    rng = np.random.default_rng(seed)
    return np.clip(rng.lognormal(np.log(800), 0.5, n), 50, 3500).astype(int)


def padding_table(lengths, batch_size):
    """Rows of padding statistics, one per (ordering, caps) variant."""
    x = np.zeros((len(lengths), int(lengths.max()), 1), "float32")
    variants = [
        ("random", {}),
        ("laplace:.1000", {}),
        ("laplace:.100", {}),
        ("sorted", {}),
        ("random", {"max_tokens": batch_size * 1000, "batch_size": None}),
        (
            "laplace:.1000",
            {"max_tokens": batch_size * 1000, "batch_size": None},
        ),
        ("random", {"pad_to_multiple_of": 64}),
        ("laplace:.1000", {"pad_to_multiple_of": 8}),
        ("laplace:.1000", {"pad_to_multiple_of": 64}),
    ]
    rows, base = [], {}
    for ordering, extra in variants:
        options = {"batch_size": batch_size, **extra}
        b = LengthBatcher(
            x, lengths=lengths, ordering=ordering, seed=0, **options
        )
        s = b.stats(0)
        padding = s["padded_frames"] - s["frames"]
        key = "tokens" if "max_tokens" in extra else "count"
        if ordering == "random" and "pad_to_multiple_of" not in extra:
            base[key] = padding
        rows.append(
            {
                "ordering": ordering,
                "caps": {k: v for k, v in options.items() if v is not None},
                "batches": s["batches"],
                "padding_share": s["padding_share"],
                "padding_vs_random": padding / base[key],
                "shapes": s["shapes"],
            }
        )
    return rows


def conv_model():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((None, 40))
    h = keras.layers.Conv1D(64, 5, padding="same", activation="relu")(inputs)
    h = keras.layers.Conv1D(64, 5, padding="same", activation="relu")(h)
    out = keras.layers.Dense(4)(keras.layers.GlobalAveragePooling1D()(h))
    model = keras.Model(inputs, out)
    model.compile(
        "adam",
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def train_speed(lengths, batch_size, rounds, pad, warmup):
    rng = np.random.default_rng(0)
    x = [rng.normal(size=(t, 40)).astype("float32") for t in lengths]
    y = rng.integers(0, 4, len(lengths))
    runs = {}
    for name in ("random", "laplace:.1000"):
        b = LengthBatcher(
            x, y, batch_size=batch_size, ordering=name, seed=0,
            pad_to_multiple_of=pad,
        )  # fmt: skip
        model = conv_model()
        model.fit(b, callbacks=[b], epochs=warmup, shuffle=False, verbose=0)
        runs[name] = (model, b)
    times = {name: [] for name in runs}
    for r in range(rounds):
        for name, (model, b) in runs.items():
            start = time.perf_counter()
            epoch = warmup + r
            model.fit(
                b, callbacks=[b], epochs=epoch + 1, initial_epoch=epoch,
                shuffle=False, verbose=0,
            )  # fmt: skip
            times[name].append(time.perf_counter() - start)
    out = {}
    for name, values in times.items():
        seconds = statistics.median(values)
        out[name] = {
            "seconds_per_epoch": seconds,
            "sequences_per_s": len(lengths) / seconds,
            "steps_per_s": runs[name][1].stats(1)["batches"] / seconds,
        }
    out["speedup"] = (
        out["random"]["seconds_per_epoch"]
        / out["laplace:.1000"]["seconds_per_epoch"]
    )
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequences", type=int, default=20000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--train", action="store_true")
    parser.add_argument("--train-sequences", type=int, default=1024)
    parser.add_argument("--scale", type=float, default=0.25)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=3)
    add_threads(parser)
    parser.add_argument("--json")
    args = parser.parse_args()
    use_threads(args.threads)
    lengths = lengths_of(args.sequences)
    print(
        f"{args.sequences} lengths, median {int(np.median(lengths))}, "
        f"{lengths.min()}-{lengths.max()} frames; batch {args.batch_size}"
    )
    result = {"padding": padding_table(lengths, args.batch_size)}
    for row in result["padding"]:
        print(
            f"{row['ordering']:>14} {str(row['caps']):<44} batches "
            f"{row['batches']:>5}  padding {row['padding_share']:6.1%}  "
            f"vs random {row['padding_vs_random']:.3f}  shapes {row['shapes']}"
        )
    if args.train:
        short = np.maximum(
            (lengths_of(args.train_sequences, 1) * args.scale).astype(int), 4
        )
        speed = train_speed(
            short, args.batch_size, args.rounds, pad=16, warmup=args.warmup
        )
        result["train"] = speed
        result["backend"] = keras.backend.backend()
        for name in ("random", "laplace:.1000"):
            s = speed[name]
            print(
                f"{keras.backend.backend()} {name:>14}: "
                f"{s['seconds_per_epoch']:.2f} s/epoch, "
                f"{s['steps_per_s']:.1f} steps/s, "
                f"{s['sequences_per_s']:.0f} sequences/s"
            )
        print(f"laplace epoch time vs random: {speed['speedup']:.2f}x faster")
    write_json(args.json, result)


if __name__ == "__main__":
    main()
