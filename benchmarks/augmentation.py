"""Augmentation layers: time per call in a compiled function, against
Keras's RandomErasing / MixUp / CutMix and against one elementwise pass
over the same batch, with and without XLA, in the same run.

Batches: images 128x32x32x3, spectrograms 128x1000x80 (float32).
Every function is a `tf.function` (TF backend); times are medians over
`--repeats` interleaved rounds of `--iters` calls each.

Targets (issue 6): Cutout/CutMix <= 2 elementwise passes and >= 10x faster
than RandomErasing under XLA; SpecAugment <= 1.5 elementwise passes; MixUp
no slower than Keras's.

Usage: python benchmarks/augmentation.py [--quick] [--json out.json]
"""

import argparse
import json
import os
import statistics
import time

os.environ["KERAS_BACKEND"] = "tensorflow"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_trainplus as ktp  # noqa: E402

L = ktp.layers


def candidates(images, labels, spec):
    """name -> (kind, make_fn); each fn maps nothing to a tensor output."""

    def layer_fn(layer, data):
        return lambda: layer(data, training=True)

    def passes(x):
        # One elementwise pass: read the batch, write a batch.
        return lambda: tf.where(x > 0.5, tf.zeros_like(x), x)

    labelled = (images, labels)
    keras_dict = {"images": images, "labels": labels}
    return {
        "images": {
            "one elementwise pass": passes(images),
            "ktp Cutout(16)": layer_fn(L.Cutout(16, seed=1), images),
            "keras RandomErasing": layer_fn(
                keras.layers.RandomErasing(
                    factor=1.0, value_range=(0, 1), seed=1
                ),
                images,
            ),
            "ktp CutMix": layer_fn(L.CutMix(seed=1), labelled),
            "keras CutMix": layer_fn(keras.layers.CutMix(seed=1), keras_dict),
            "ktp MixUp(0.2)": layer_fn(L.MixUp(0.2, seed=1), labelled),
            "keras MixUp(0.2)": layer_fn(
                keras.layers.MixUp(0.2, seed=1), keras_dict
            ),
        },
        "spectrograms": {
            "one elementwise pass": passes(spec),
            "ktp SpecAugment LD": layer_fn(
                L.SpecAugment(policy="LD", seed=1), spec
            ),
            "ktp SpecAugment adaptive (10 masks, p_S=0.05)": layer_fn(
                L.SpecAugment(
                    num_time_masks=10, adaptive_time_mask_width=0.05, seed=1
                ),
                spec,
            ),
        },
    }


def block(out):
    for t in tf.nest.flatten(out):
        t.numpy()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json")
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.iters = 1, 2
    rng = np.random.default_rng(0)
    images = tf.constant(rng.uniform(size=(128, 32, 32, 3)), tf.float32)
    labels = tf.constant(np.eye(10)[rng.integers(0, 10, 128)], tf.float32)
    spec = tf.constant(rng.normal(size=(128, 1000, 80)), tf.float32)
    print(
        f"keras {keras.__version__}, tensorflow {tf.__version__}, "
        f"{os.cpu_count()} CPUs, {args.repeats} rounds x {args.iters} "
        "calls, median ms per call"
    )
    results = {}
    for group, fns in candidates(images, labels, spec).items():
        for xla in (False, True):
            compiled, failed = {}, {}
            for name, fn in fns.items():
                f = tf.function(fn, jit_compile=xla)
                try:
                    block(f())
                    block(f())
                    compiled[name] = f
                except Exception as e:  # noqa: BLE001
                    msg = str(e).strip().splitlines()
                    failed[name] = next(
                        (
                            m
                            for m in msg
                            if "compil" in m.lower() or "kernel" in m.lower()
                        ),
                        msg[0],
                    )[:90]
            times = {name: [] for name in compiled}
            for _ in range(args.repeats):
                for name, f in compiled.items():
                    start = time.perf_counter()
                    for _ in range(args.iters):
                        out = f()
                    block(out)
                    times[name].append(
                        (time.perf_counter() - start) / args.iters * 1e3
                    )
            base = statistics.median(times["one elementwise pass"])
            mode = "XLA" if xla else "no XLA"
            print(f"\n{group}, {mode}")
            print(f"{'':48} {'ms':>8} {'x one pass':>11}")
            for name, ts in times.items():
                med = statistics.median(ts)
                results[f"{group} | {mode} | {name}"] = med
                print(f"{name:48} {med:8.3f} {med / base:11.2f}")
            for name, msg in failed.items():
                results[f"{group} | {mode} | {name}"] = None
                print(f"{name:48} {'fails':>8}  {msg}")
    print("\nratios")
    for mode in ("no XLA", "XLA"):
        get = lambda n: results.get(f"images | {mode} | {n}")  # noqa: E731
        if get("keras RandomErasing") and get("ktp Cutout(16)"):
            print(
                f"  {mode}: RandomErasing / Cutout = "
                f"{get('keras RandomErasing') / get('ktp Cutout(16)'):.1f}x"
            )
        if get("keras MixUp(0.2)") and get("ktp MixUp(0.2)"):
            print(
                f"  {mode}: ktp MixUp / keras MixUp = "
                f"{get('ktp MixUp(0.2)') / get('keras MixUp(0.2)'):.2f}"
            )
        if get("keras CutMix") and get("ktp CutMix"):
            print(
                f"  {mode}: ktp CutMix / keras CutMix = "
                f"{get('ktp CutMix') / get('keras CutMix'):.2f}"
            )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "ms": results}, f, indent=1)


if __name__ == "__main__":
    main()
