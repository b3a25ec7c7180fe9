"""Fine-tuning with few labels: discriminative learning rates and gradual
unfreezing (ULMFiT, Howard & Ruder 2018) on real data.

A small CNN is trained on scikit-learn's digits 0-4. It is then
fine-tuned, with a new head, on digits 5-9 from 5 labelled examples per
class (held-out accuracy on the other 5-9 images):

* naive fine-tuning: every layer at the same learning rate from the start;
* head only: the pretrained body frozen (`GradualUnfreezing({0: 1})`);
* `GradualUnfreezing` with ULMFiT's recipe ``{0: 1, 1: 2, 2: 3, 3:
  "all"}``: the new head first, one more layer every epoch;
* the same with `DiscriminativeLR(decay=1 / 2.6)`: each layer at 1/2.6 of
  the LR of the layer above.

Prints the accuracy per epoch (mean over seeds) as a table and saves it as
a PNG. No recompiling, no `trainable` toggling: the frozen
BatchNormalization layer stays in inference mode. What to expect on this
small problem (docs/fine_tuning.md has the measured table): the features
learned on 0-4 are a poor basis for 5-9 (head only stays far behind), so
fine-tuning the body matters; the gradual schedules catch up with naive
fine-tuning within two or three epochs.

Run: python examples/fine_tuning.py [--fast] [--png fine_tuning.png]
"""

import argparse
import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402

import keras_trainplus as ktp  # noqa: E402

LR = 1e-2
REPEATS = 10  # each epoch shows the few labelled examples 10 times


def data(shots, seed):
    """Digits 0-4 (all), and 5-9 split into `shots` labelled examples per
    class and the rest for evaluation."""
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype("float32")
    old = y < 5
    rng = np.random.default_rng(seed)
    few = np.concatenate(
        [rng.permutation(np.flatnonzero(y == c))[:shots] for c in range(5, 10)]
    )
    rest = np.setdiff1d(np.flatnonzero(~old), few)
    return (x[old], y[old]), (x[few], y[few] - 5), (x[rest], y[rest] - 5)


def body():
    return [
        keras.layers.Reshape((8, 8, 1)),
        keras.layers.Conv2D(16, 3, padding="same", name="conv_1"),
        keras.layers.BatchNormalization(name="bn_1"),
        keras.layers.Activation("relu"),
        keras.layers.Conv2D(
            32, 3, padding="same", activation="relu", name="conv_2"
        ),
        keras.layers.MaxPooling2D(),
        keras.layers.Flatten(),
        keras.layers.Dense(64, activation="relu", name="fc"),
    ]


def compile_(model):
    model.compile(
        optimizer=keras.optimizers.Adam(LR),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def pretrained(old, epochs):
    model = compile_(
        keras.Sequential(
            [keras.Input((64,)), *body(), keras.layers.Dense(5, name="head")]
        )
    )
    model.fit(*old, batch_size=32, epochs=epochs, verbose=0)
    return model


def fine_tune(source, callbacks, few, rest, epochs):
    """A copy of `source`'s body with a new head, trained on `few`."""
    model = keras.Sequential(
        [keras.Input((64,)), *body(), keras.layers.Dense(5, name="head")]
    )
    for new, old in zip(model.layers[:-1], source.layers[:-1]):
        new.set_weights(old.get_weights())
    compile_(model)
    x, y = np.tile(few[0], (REPEATS, 1)), np.tile(few[1], REPEATS)
    history = model.fit(
        x,
        y,
        batch_size=10,
        epochs=epochs,
        verbose=0,
        validation_data=rest,
        callbacks=callbacks,
    )
    return history.history["val_accuracy"]


ULMFIT = {0: 1, 1: 2, 2: 3, 3: "all"}
RUNS = {
    "naive": lambda: [],
    "head only": lambda: [ktp.callbacks.GradualUnfreezing({0: 1})],
    "GradualUnfreezing": lambda: [ktp.callbacks.GradualUnfreezing(ULMFIT)],
    "DiscriminativeLR + GU": lambda: [
        ktp.callbacks.DiscriminativeLR(decay=1 / 2.6),
        ktp.callbacks.GradualUnfreezing(ULMFIT),
    ],
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--shots", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--fast", action="store_true")
    parser.add_argument("--png", default="fine_tuning.png")
    args = parser.parse_args()
    epochs = 4 if args.fast else args.epochs
    seeds = 1 if args.fast else args.seeds
    curves = {name: [] for name in RUNS}
    for seed in range(seeds):
        old, few, rest = data(args.shots, seed)
        keras.utils.set_random_seed(seed)
        source = pretrained(old, 4 if args.fast else 20)
        for name, callbacks in RUNS.items():
            keras.utils.set_random_seed(seed)
            curves[name].append(
                fine_tune(source, callbacks(), few, rest, epochs)
            )
    mean = {name: np.mean(c, axis=0) for name, c in curves.items()}
    print(
        f"digits 5-9, {args.shots} labels per class, body pretrained on "
        f"digits 0-4; held-out accuracy, mean of {seeds} seed(s)\n"
    )
    names = list(RUNS)
    width = max(len(n) for n in names)
    print("epoch  " + "  ".join(f"{n:>{width}}" for n in names))
    for epoch in range(epochs):
        row = "  ".join(f"{mean[n][epoch]:{width}.4f}" for n in names)
        print(f"{epoch + 1:5d}  {row}")
    final = ", ".join(f"{n} {mean[n][-1]:.4f}" for n in names)
    print(f"\nfinal accuracy: {final}")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axis = plt.subplots(figsize=(6.4, 3.6))
        for name in names:
            axis.plot(range(1, epochs + 1), mean[name], marker="o", label=name)
        axis.set_xlabel("epoch")
        axis.set_ylabel("held-out accuracy (digits 5-9)")
        axis.set_title(f"fine-tuning with {args.shots} labels per class")
        axis.legend()
        fig.tight_layout()
        fig.savefig(args.png, dpi=100)
        print(f"saved {args.png}")
    except ImportError:
        print("(install matplotlib to save the plot)")


if __name__ == "__main__":
    main()
