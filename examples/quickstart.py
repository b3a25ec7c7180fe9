"""Quickstart: newbob + warmup + dropout schedule + clip switch + MixUp.

Trains a small MLP on scikit-learn's handwritten digits (1797 real 8x8
images shipped with scikit-learn) the RETURNN way:

* `NewbobLRControl`: the learning rate is halved whenever the validation
  loss stops improving by 1% (RETURNN's newbob_rel), with a per-step linear
  warmup over the first 100 updates multiplying it inside the step;
* `DropoutScheduler`: no dropout for the first 2 epochs, then 0.3;
* `GradientClipScheduler`: clip the global norm at 2 for the first 3
  epochs, then not at all;
* `MixUp` inside the model, with its targets mixed in `fit`
  (`mix_targets(model)`, sparse labels).

All at `steps_per_execution=8`, where per-batch Python callbacks would act
on one update in 8. It prints what History recorded per epoch and the final
validation accuracy, and saves the applied values as a PNG.

Run: python examples/quickstart.py [--fast] [--epochs N] [--png PATH]
"""

import argparse
import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

import keras_trainplus as ktp  # noqa: E402
from keras_trainplus import schedules as S  # noqa: E402


def load_data():
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype("float32")
    return train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)


def build_model():
    model = keras.Sequential(
        [
            keras.Input((64,)),
            ktp.layers.MixUp(alpha=0.2, seed=0),
            keras.layers.Dense(256, activation="relu"),
            keras.layers.Dropout(0.0),
            keras.layers.Dense(10),
        ]
    )
    ktp.layers.mix_targets(model)  # the one extra line for MixUp
    model.compile(
        optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        steps_per_execution=8,
    )
    return model


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument(
        "--fast", action="store_true", help="4 epochs, for CI smoke tests"
    )
    parser.add_argument("--png", default="quickstart_applied.png")
    args = parser.parse_args()
    epochs = 4 if args.fast else args.epochs
    x_train, x_val, y_train, y_val = load_data()
    keras.utils.set_random_seed(0)
    model = build_model()
    callbacks = [
        ktp.callbacks.NewbobLRControl(
            monitor="val_loss",
            relative_error_threshold=-0.01,
            decay=0.5,
            step_shape=S.Linear(0.0, 1.0, 100),
        ),
        ktp.callbacks.DropoutScheduler({0: 0.0, 2: 0.3}),
        ktp.callbacks.GradientClipScheduler({0: 2.0, 3: None}),
    ]
    print(
        f"keras {keras.__version__} ({keras.backend.backend()}), "
        f"keras_trainplus {ktp.__version__}; {len(x_train)} training "
        f"images, {epochs} epochs"
    )
    history = model.fit(
        x_train,
        y_train,
        batch_size=32,
        epochs=epochs,
        validation_data=(x_val, y_val),
        callbacks=callbacks,
        verbose=0,
    )
    h = history.history
    print(
        f"\n{'epoch':>5} {'learning_rate':>13} {'dropout':>8} "
        f"{'clip':>6} {'loss':>7} {'val_loss':>8} {'val_acc':>8}"
    )
    for e in range(epochs):
        clip = h["gradient_clip"][e]
        print(
            f"{e:>5} {h['learning_rate'][e]:>13.4g} "
            f"{h['dropout_rate'][e]:>8.2f} "
            f"{'off' if clip == float('inf') else f'{clip:g}':>6} "
            f"{h['loss'][e]:>7.4f} {h['val_loss'][e]:>8.4f} "
            f"{h['val_accuracy'][e]:>8.4f}"
        )
    print(f"\nfinal val_acc {h['val_accuracy'][-1]:.4f}")
    try:
        ktp.plot_history(
            history,
            path=args.png,
            title="values applied during fit (from History)",
        )
        print(f"saved {args.png}")
    except ImportError:
        print("(install matplotlib to save the plot)")


if __name__ == "__main__":
    main()
