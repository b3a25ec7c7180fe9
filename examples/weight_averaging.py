"""Weight averaging on real data: an EMA of the weights (`WeightEMA`) and
Stochastic Weight Averaging (`StochasticWeightAveraging`) against the last
raw weights.

An MLP with BatchNormalization and dropout learns scikit-learn's digits
(1200 training images, 597 held out) with SGD at a high learning rate, so
the raw weights end noisy. Per seed:

* `WeightEMA(decay=0.99, use_warmup=True)`: the validation of every epoch
  runs on the averaged weights (``val_accuracy``); a small callback
  evaluates the raw weights too (``raw_val_accuracy``);
* `StochasticWeightAveraging(swa_lrs=0.05, swa_epoch_start=0.6)`: the
  learning rate anneals to 0.05 from 60% of the run, the epoch ends from
  there are averaged, BatchNormalization statistics recomputed at the end.

Prints the final held-out accuracy of each (mean over seeds) and saves the
per-epoch curves (raw vs averaged) as a PNG. The measured table is in
docs/weight_averaging.md and BENCHMARKS.md.

Run: python examples/weight_averaging.py [--fast] [--png weight_averaging.png]
"""

import argparse
import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402

import keras_trainplus as ktp  # noqa: E402

LR = 0.2


def data(seed):
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype("float32")
    order = np.random.default_rng(seed).permutation(len(x))
    train, val = order[:1200], order[1200:]
    return (x[train], y[train]), (x[val], y[val])


def build(seed):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(128),
            keras.layers.BatchNormalization(),
            keras.layers.Activation("relu"),
            keras.layers.Dropout(0.2),
            keras.layers.Dense(10),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.SGD(LR, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


class RawAccuracy(keras.callbacks.Callback):
    """Held-out accuracy of the raw weights, into ``logs``."""

    def __init__(self, val):
        super().__init__()
        self.val = val

    def on_epoch_end(self, epoch, logs=None):
        _, accuracy = self.model.evaluate(*self.val, verbose=0)
        logs["raw_val_accuracy"] = accuracy


def run(seed, epochs):
    train, val = data(seed)
    fit = dict(batch_size=32, epochs=epochs, verbose=0, validation_data=val)
    ema_model = build(seed)
    ema = ema_model.fit(
        *train,
        callbacks=[
            ktp.callbacks.WeightEMA(decay=0.99, use_warmup=True),
            RawAccuracy(val),
        ],
        **fit,
    ).history
    swa_model = build(seed)
    swa = swa_model.fit(
        *train,
        callbacks=[
            ktp.callbacks.StochasticWeightAveraging(
                swa_lrs=0.05, swa_epoch_start=0.6, annealing_epochs=2
            ),
            RawAccuracy(val),
        ],
        **{**fit, "verbose": 0},
    ).history
    swa_final = swa_model.evaluate(*val, verbose=0)[1]
    return {
        "raw (EMA run)": ema["raw_val_accuracy"],
        "EMA": ema["val_accuracy"],
        "raw (SWA run)": swa["raw_val_accuracy"],
        "SWA": [np.nan] * (epochs - 1) + [swa_final],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--fast", action="store_true")
    parser.add_argument("--png", default="weight_averaging.png")
    args = parser.parse_args()
    epochs = 4 if args.fast else args.epochs
    seeds = 1 if args.fast else args.seeds
    runs = [run(seed, epochs) for seed in range(seeds)]
    names = list(runs[0])
    mean = {n: np.mean([r[n] for r in runs], axis=0) for n in names}
    print(f"digits, held-out accuracy, mean of {seeds} seed(s)\n")
    print(f"{'seed':<6}" + "".join(f"{n:>15}" for n in names))
    for seed, r in enumerate(runs):
        print(f"{seed:<6}" + "".join(f"{r[n][-1]:>15.4f}" for n in names))
    print(f"{'mean':<6}" + "".join(f"{mean[n][-1]:>15.4f}" for n in names))
    print(
        f"\nfinal accuracy: raw {mean['raw (EMA run)'][-1]:.4f}, "
        f"EMA {mean['EMA'][-1]:.4f}; raw {mean['raw (SWA run)'][-1]:.4f}, "
        f"SWA {mean['SWA'][-1]:.4f}"
    )
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(install matplotlib to save the plot)")
        return
    fig, axis = plt.subplots(figsize=(6.4, 3.6))
    x = range(1, epochs + 1)
    for name, style in zip(names[:3], ("-", "-", ":")):
        axis.plot(x, mean[name], style, marker=".", label=name)
    axis.plot([epochs], [mean["SWA"][-1]], "*", markersize=12, label="SWA")
    axis.set_xlabel("epoch")
    axis.set_ylabel("held-out accuracy")
    axis.set_title("digits: raw vs averaged weights")
    axis.legend()
    fig.tight_layout()
    fig.savefig(args.png, dpi=100)
    print(f"saved {args.png}")


if __name__ == "__main__":
    main()
