"""1cycle vs a constant learning rate (and friends) on real data.

Trains the same MLP on scikit-learn's digits with a constant LR, with
`OneCycleLR` (Smith's 1cycle, inverse momentum cycling), `WarmupDecayLR`
(linear warmup, cosine decay) and `CyclicLR` (triangular2), all at
`steps_per_execution=8`, and prints a table: final validation accuracy and
the first epoch at which validation accuracy reached the target. Saves the
1cycle schedule (LR and momentum over steps) and the values History
recorded as PNGs.

Run: python examples/one_cycle_vs_constant.py [--fast] [--target 0.95]
"""

import argparse
import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

import keras_trainplus as ktp  # noqa: E402
from keras_trainplus import schedules as S  # noqa: E402


def build_model(learning_rate):
    model = keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(128, activation="relu"),
            keras.layers.Dense(10),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        steps_per_execution=8,
    )
    return model


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--target", type=float, default=0.95)
    parser.add_argument("--fast", action="store_true")
    parser.add_argument("--out", default=".")
    args = parser.parse_args()
    epochs = 3 if args.fast else args.epochs
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype("float32")
    x_tr, x_va, y_tr, y_va = train_test_split(
        x, y, test_size=0.25, random_state=0, stratify=y
    )
    batch = 32
    steps = int(np.ceil(len(x_tr) / batch))
    runs = {
        "constant 0.05": [],
        "OneCycleLR(max_lr=0.5)": [ktp.callbacks.OneCycleLR(0.5)],
        "WarmupDecayLR(cosine)": [
            ktp.callbacks.WarmupDecayLR(
                peak_lr=0.3, warmup_steps=0.1, decay="cosine"
            )
        ],
        "CyclicLR(triangular2)": [
            ktp.callbacks.CyclicLR(
                0.01, 0.4, step_size_up=2 * steps, mode="triangular2"
            )
        ],
    }
    rows, one_cycle_history = [], None
    for name, callbacks in runs.items():
        keras.utils.set_random_seed(0)
        history = build_model(0.05).fit(
            x_tr,
            y_tr,
            batch_size=batch,
            epochs=epochs,
            verbose=0,
            validation_data=(x_va, y_va),
            callbacks=callbacks,
        )
        accs = history.history["val_accuracy"]
        hit = next(
            (i + 1 for i, a in enumerate(accs) if a >= args.target), None
        )
        rows.append((name, accs[-1], hit))
        if name.startswith("OneCycle"):
            one_cycle_history = history
    width = max(len(r[0]) for r in rows)
    print(
        f"digits, {epochs} epochs of {steps} updates, steps_per_execution=8\n"
    )
    print(f"{'run':<{width}}  final val_acc  epochs to {args.target:.0%}")
    for name, acc, hit in rows:
        print(f"{name:<{width}}  {acc:13.4f}  {hit if hit else '-':>14}")
    try:
        total = epochs * steps
        ktp.plot_schedule(
            S.OneCycle(0.5, total),
            total,
            path=os.path.join(args.out, "one_cycle_schedule.png"),
            title="OneCycleLR(max_lr=0.5) over this run",
            momentum=S.OneCycle.momentum(0.85, 0.95, total),
        )
        ktp.plot_history(
            one_cycle_history,
            path=os.path.join(args.out, "one_cycle_applied.png"),
            title="1cycle: values applied (History)",
        )
        print("\nsaved one_cycle_schedule.png, one_cycle_applied.png")
    except ImportError:
        print("(install matplotlib to save the plots)")


if __name__ == "__main__":
    main()
