"""Gradient controls on real data: a growing batch and annealed gradient noise.

Part 1, "Don't decay the learning rate, increase the batch size" (Smith et
al., 2018): the same MLP on scikit-learn's digits with a constant LR, with
a step LR decay (x0.25 at 1/2 and 3/4 of the run), and with the decay
replaced by growing the effective batch (`GradientAccumulationScheduler`,
factor 1 -> 4 -> 16, same epochs, fewer updates).

Part 2, "Adding Gradient Noise Improves Learning for Very Deep Networks"
(Neelakantan et al., 2015): a 10-layer tanh MLP with a poor initialization,
trained with and without `GradientNoise(eta=0.01)`, over 3 seeds.

Prints both tables and saves the values the runs applied (History) as a
PNG.

Run: python examples/gradient_controls.py [--fast] [--png gradient_controls.png]
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


def digits():
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype("float32")
    return train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)


def mlp(depth, width, init="glorot_uniform", lr=0.1):
    layers = [keras.Input((64,))]
    for _ in range(depth):
        layers.append(
            keras.layers.Dense(
                width, activation="tanh", kernel_initializer=init
            )
        )
    model = keras.Sequential(layers + [keras.layers.Dense(10)])
    model.compile(
        optimizer=keras.optimizers.SGD(lr, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def growing_batch(data, epochs):
    x_tr, x_va, y_tr, y_va = data
    half, three_quarters = epochs // 2, 3 * epochs // 4
    runs = {
        "constant LR 0.1, batch 16": [],
        "step decay x0.25 (LR)": [
            ktp.callbacks.PerEpochLR(
                {0: 0.1, half: 0.025, three_quarters: 0.00625}
            )
        ],
        "growing batch x4 (accumulation)": [
            ktp.callbacks.GradientAccumulationScheduler(
                {0: 1, half: 4, three_quarters: 16}
            )
        ],
    }
    rows, histories = [], {}
    for name, callbacks in runs.items():
        keras.utils.set_random_seed(0)
        model = mlp(2, 128)
        history = model.fit(
            x_tr,
            y_tr,
            batch_size=16,
            epochs=epochs,
            verbose=0,
            validation_data=(x_va, y_va),
            callbacks=callbacks,
        )
        updates = int(model.optimizer.iterations)
        rows.append((name, history.history["val_accuracy"][-1], updates))
        histories[name] = history
    return rows, histories


def gradient_noise(data, epochs, seeds):
    x_tr, x_va, y_tr, y_va = data
    init = keras.initializers.RandomNormal(stddev=0.3)
    rows = []
    for name, make in (
        ("no noise", lambda seed: []),
        (
            "GradientNoise(eta=0.01)",
            lambda seed: [ktp.callbacks.GradientNoise(0.01, seed=seed)],
        ),
    ):
        accs = []
        for seed in range(seeds):
            keras.utils.set_random_seed(seed)
            history = mlp(10, 50, init, lr=0.02).fit(
                x_tr,
                y_tr,
                batch_size=32,
                epochs=epochs,
                verbose=0,
                validation_data=(x_va, y_va),
                callbacks=make(seed),
            )
            accs.append(history.history["val_accuracy"][-1])
        rows.append((name, float(np.mean(accs)), float(np.min(accs))))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=24)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--fast", action="store_true")
    parser.add_argument("--png", default="gradient_controls.png")
    args = parser.parse_args()
    epochs = 4 if args.fast else args.epochs
    seeds = 1 if args.fast else args.seeds
    data = digits()

    rows, histories = growing_batch(data, epochs)
    width = max(len(r[0]) for r in rows)
    print(f"digits, MLP 64-128-128-10, SGD(momentum=0.9), {epochs} epochs\n")
    print(f"{'run':<{width}}  final val_acc  updates")
    for name, acc, updates in rows:
        print(f"{name:<{width}}  {acc:13.4f}  {updates:7d}")

    rows = gradient_noise(data, epochs, seeds)
    width = max(len(r[0]) for r in rows)
    print(f"\n10-layer tanh MLP, N(0, 0.3) init, {seeds} seed(s)\n")
    print(f"{'run':<{width}}  mean val_acc  worst val_acc")
    for name, mean, worst in rows:
        print(f"{name:<{width}}  {mean:12.4f}  {worst:13.4f}")

    try:
        ktp.plot_history(
            histories["growing batch x4 (accumulation)"],
            path=args.png,
            title="growing batch: values applied (History)",
        )
        print(f"\nsaved {args.png}")
    except ImportError:
        print("(install matplotlib to save the plot)")


if __name__ == "__main__":
    main()
