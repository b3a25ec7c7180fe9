"""Quickstart: in-graph learning-rate schedules on real data.

Trains the same small MLP on scikit-learn's handwritten digits (1797 real
8x8 images, shipped with scikit-learn) with

* a constant learning rate (the baseline),
* `OneCycleLR` (1cycle with inverse momentum cycling),
* `WarmupDecayLR` (linear warmup, cosine decay),
* `CyclicLR` (triangular2),

all with `steps_per_execution=8`, where a per-batch Python callback would
set the wrong learning rate on 7 of every 8 updates. It prints the
validation accuracy of each run and the learning rate History recorded.

Run: python examples/quickstart.py [--fast] [--epochs N]
"""

import argparse
import os
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

import keras_trainplus as ktp  # noqa: E402


def load_data():
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype("float32")
    return train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)


def build_model(learning_rate):
    model = keras.Sequential([
        keras.Input((64,)),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dropout(0.2),
        keras.layers.Dense(10),
    ])
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
    parser.add_argument("--fast", action="store_true",
                        help="3 epochs, for CI smoke tests")
    args = parser.parse_args()
    epochs = 3 if args.fast else args.epochs
    x_train, x_val, y_train, y_val = load_data()
    batch = 32
    steps = int(np.ceil(len(x_train) / batch))

    runs = {
        "constant 0.05": (0.05, []),
        "OneCycleLR(max_lr=0.5)": (0.05, [ktp.callbacks.OneCycleLR(0.5)]),
        "WarmupDecayLR(cosine)": (0.05, [ktp.callbacks.WarmupDecayLR(
            peak_lr=0.3, warmup_steps=0.1, decay="cosine")]),
        "CyclicLR(triangular2)": (0.05, [ktp.callbacks.CyclicLR(
            0.01, 0.4, step_size_up=2 * steps, mode="triangular2")]),
    }
    print(f"keras {keras.__version__} ({keras.backend.backend()}), "
          f"keras_trainplus {ktp.__version__}; {len(x_train)} training "
          f"images, {epochs} epochs of {steps} steps")
    rows = []
    for name, (lr, callbacks) in runs.items():
        keras.utils.set_random_seed(0)
        model = build_model(lr)
        start = time.time()
        history = model.fit(x_train, y_train, batch_size=batch,
                            epochs=epochs, validation_data=(x_val, y_val),
                            callbacks=callbacks, verbose=0)
        seconds = time.time() - start
        acc = history.history["val_accuracy"][-1]
        lrs = history.history.get("learning_rate")
        trace = ("-" if lrs is None
                 else " ".join(f"{v:.3g}" for v in lrs))
        rows.append((name, acc, seconds, trace))

    width = max(len(r[0]) for r in rows)
    print(f"\n{'run':<{width}}  val_acc  seconds  learning rate at the end "
          "of each epoch (from History)")
    for name, acc, seconds, trace in rows:
        print(f"{name:<{width}}  {acc:7.4f}  {seconds:7.1f}  {trace}")


if __name__ == "__main__":
    main()
