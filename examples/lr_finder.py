"""LR range test (Leslie Smith) on real data, with its plot.

Runs `keras_trainplus.find_lr` on an MLP for scikit-learn's digits (Keras
progress bar while it runs), prints the suggestions, saves the curve with
the suggestions marked as a PNG, checks that the model was left exactly as
before, then trains with 1cycle at the valley suggestion.

Run: python examples/lr_finder.py [--fast] [--png lr_finder.png]
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true")
    parser.add_argument("--png", default="lr_finder.png")
    args = parser.parse_args()
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype("float32")
    x_tr, x_va, y_tr, y_va = train_test_split(
        x, y, test_size=0.25, random_state=0, stratify=y
    )
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(128, activation="relu"),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(10),
        ]
    )
    model.compile(
        keras.optimizers.SGD(0.01, momentum=0.9),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    before = [np.array(v) for v in model.get_weights()]
    result = ktp.find_lr(
        model,
        x_tr,
        y_tr,
        batch_size=32,
        start_lr=1e-5,
        end_lr=10.0,
        num_steps=60 if args.fast else 100,
    )
    print(result)
    for method, lr in result.suggestions().items():
        print(f"  {method:>8}: {lr:.3g}")
    same = all(
        np.array_equal(a, b) for a, b in zip(before, model.get_weights())
    )
    print("model left exactly as before:", same)
    try:
        result.plot(args.png)
        print(f"saved {args.png}")
    except ImportError:
        print("(install matplotlib to save the plot)")
    lr = result.suggestion("valley")
    history = model.fit(
        x_tr,
        y_tr,
        batch_size=32,
        epochs=2 if args.fast else 10,
        verbose=0,
        validation_data=(x_va, y_va),
        callbacks=[ktp.callbacks.OneCycleLR(max_lr=lr * 3)],
    )
    print(
        f"1cycle at max_lr = 3 x valley = {lr * 3:.3g}: val_acc "
        f"{history.history['val_accuracy'][-1]:.4f}"
    )


if __name__ == "__main__":
    main()
