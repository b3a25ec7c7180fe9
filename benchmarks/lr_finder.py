"""LR finder: quality of its suggestion and its cost, on real data.

Quality: on scikit-learn's handwritten digits (1797 real 8x8 images), an
MLP trained with SGD(momentum=0.9) for `--epochs` epochs at the finder's
"valley" suggestion is compared with the best of a log-spaced grid of 9
learning rates trained the same way. Accuracies are validation accuracies
averaged over `--seeds` seeds. Target: within 1 percentage point of the
best grid LR.

Time: `find_lr` for `--steps` updates against `model.fit` for the same
number of updates (both on a fresh compiled model, so both include one
trace), at steps_per_execution 1 (and 8 where supported), best of
`--repeats`. Target: <= 1.1.

Usage: KERAS_BACKEND=tensorflow python benchmarks/lr_finder.py [--quick]
"""

import argparse
import json
import os
import statistics
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

import keras_trainplus as ktp  # noqa: E402


def data():
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype("float32")
    return train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)


def model(lr, seed, spe=1):
    keras.utils.set_random_seed(seed)
    m = keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(128, activation="relu"),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(10),
        ]
    )
    m.compile(
        keras.optimizers.SGD(lr, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        steps_per_execution=spe,
    )
    return m


def accuracy(lr, seeds, epochs, split):
    x_tr, x_va, y_tr, y_va = split
    accs = []
    for seed in seeds:
        m = model(lr, seed)
        h = m.fit(
            x_tr,
            y_tr,
            batch_size=32,
            epochs=epochs,
            verbose=0,
            validation_data=(x_va, y_va),
        )
        accs.append(h.history["val_accuracy"][-1])
    return float(np.mean(accs))


def timing(steps, spe, repeats, split):
    x_tr, _, y_tr, _ = split
    batch = 16
    per_epoch = len(x_tr) // batch
    x_tr, y_tr = x_tr[: per_epoch * batch], y_tr[: per_epoch * batch]
    finder, plain = [], []
    for r in range(repeats):
        for kind in ("finder", "plain") if r % 2 == 0 else ("plain", "finder"):
            m = model(0.01, r, spe)
            start = time.perf_counter()
            if kind == "finder":
                res = ktp.find_lr(
                    m,
                    x_tr,
                    y_tr,
                    batch_size=batch,
                    num_steps=steps,
                    divergence_threshold=None,
                    verbose=0,
                )
                assert len(res.losses) == steps
                finder.append(time.perf_counter() - start)
            else:
                m.fit(
                    x_tr,
                    y_tr,
                    batch_size=batch,
                    epochs=int(np.ceil(steps / per_epoch)),
                    steps_per_epoch=min(steps, per_epoch),
                    verbose=0,
                )
                plain.append(time.perf_counter() - start)
    return (
        min(finder),
        min(plain),
        statistics.median(finder),
        statistics.median(plain),
    )


def timing_table(args, backend, split):
    rows = []
    for spe in (1,) if backend == "torch" else (1, 8):
        fb, pb, fm, pm = timing(args.steps, spe, args.repeats, split)
        rows.append((spe, fb, pb, fm, pm))
    print(
        f"\n{args.steps} updates, {args.repeats} interleaved repeats "
        f"(each on a fresh model, trace included)"
    )
    print(
        f"{'spe':>4} {'finder s':>9} {'plain s':>8} {'ratio (best)':>13}"
        f" {'ratio (median)':>15}"
    )
    for spe, fb, pb, fm, pm in rows:
        print(
            f"{spe:>4} {fb:>9.3f} {pb:>8.3f} {fb / pb:>13.3f} {fm / pm:>15.3f}",
            flush=True,
        )
    return rows


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--grid", type=int, default=9, help="grid learning rates (1e-4..1)"
    )
    parser.add_argument("--timing-only", action="store_true")
    parser.add_argument("--json")
    parser.add_argument("--plot", help="save the finder's curve here (PNG)")
    args = parser.parse_args()
    if args.quick:
        args.epochs, args.seeds, args.repeats = 2, 1, 1
    split = data()
    x_tr, _, y_tr, _ = split
    seeds = list(range(args.seeds))
    backend = keras.backend.backend()
    print(
        f"keras {keras.__version__}, backend {backend}; digits "
        f"{len(x_tr)} train images, {args.epochs} epochs, "
        f"{args.seeds} seeds"
    )

    rows = timing_table(args, backend, split)
    if args.timing_only:
        return
    m = model(0.01, 0)
    result = ktp.find_lr(
        m,
        x_tr,
        y_tr,
        batch_size=32,
        start_lr=1e-5,
        end_lr=10.0,
        num_steps=args.steps,
        verbose=0,
    )
    if args.plot:
        result.plot(args.plot)
    suggestions = result.suggestions()
    print("finder:", result, {k: f"{v:.3g}" for k, v in suggestions.items()})
    grid = np.geomspace(1e-4, 1.0, args.grid)
    grid_acc = {
        float(lr): accuracy(lr, seeds, args.epochs, split) for lr in grid
    }
    best_lr = max(grid_acc, key=grid_acc.get)
    valley = suggestions["valley"]
    valley_acc = accuracy(valley, seeds, args.epochs, split)
    print(f"\n{'learning rate':>14} {'val accuracy':>13}")
    for lr, acc in grid_acc.items():
        print(
            f"{lr:>14.4g} {acc:>13.4f}"
            + ("   <- best grid LR" if lr == best_lr else "")
        )
    print(f"{valley:>14.4g} {valley_acc:>13.4f}   <- finder (valley)")
    gap = grid_acc[best_lr] - valley_acc
    print(f"gap to the best grid LR: {100 * gap:.2f} points (target <= 1)")

    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "backend": backend,
                    "args": vars(args),
                    "suggestions": suggestions,
                    "grid": grid_acc,
                    "valley_accuracy": valley_acc,
                    "timing": rows,
                },
                f,
                indent=1,
            )


if __name__ == "__main__":
    main()
