"""keras-tuner search over callback hyperparameters on scikit-learn's digits.

The LR finder proposes a range for 1cycle's peak LR; RandomSearch then
tunes that peak, 1cycle's warmup fraction and a dropout schedule ("no
dropout for the first epochs"), declared in `build(hp)` so trial 1 is
searched too (`keras_trainplus.tuner.TunableCallbacks`).

    python examples/tuner_search.py [--fast]
"""

import argparse
import os
import tempfile

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import keras_tuner as kt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

import keras_trainplus as ktp  # noqa: E402


def build_model(hp=None):
    model = keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(128, activation="relu"),
            keras.layers.Dropout(0.0),
            keras.layers.Dense(10),
        ]
    )
    model.compile(
        keras.optimizers.SGD(0.01, momentum=0.9),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--fast", action="store_true")
    args = parser.parse_args()
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype("float32")
    x_tr, x_va, y_tr, y_va = train_test_split(
        x, y, test_size=0.25, random_state=0, stratify=y
    )
    keras.utils.set_random_seed(0)
    result = ktp.find_lr(
        build_model(),
        x_tr,
        y_tr,
        batch_size=32,
        start_lr=1e-4,
        end_lr=10.0,
        num_steps=60,
    )
    max_lr = ktp.tuner.lr_search_range(result, factor=5.0)
    print(
        f"LR finder: valley {result.suggestion():.3g}; "
        f"searching max_lr in [{max_lr[0]:.3g}, {max_lr[1]:.3g}]"
    )

    def build_callbacks(hp):
        return [
            ktp.tuner.one_cycle_lr(hp, max_lr=max_lr),
            ktp.tuner.dropout_scheduler(
                hp, rate=(0.0, 0.5), start_epoch=(0, 2)
            ),
        ]

    tuner = kt.RandomSearch(
        ktp.tuner.TunableCallbacks(build_model, build_callbacks),
        objective="val_accuracy",
        max_trials=2 if args.fast else 6,
        seed=0,
        directory=tempfile.mkdtemp(prefix="ktp_tuner_"),
        project_name="d",
    )
    tuner.search(
        x_tr,
        y_tr,
        validation_data=(x_va, y_va),
        epochs=2 if args.fast else 8,
        batch_size=32,
        verbose=0,
    )
    print(
        f"{'trial':>5} {'max_lr':>8} {'pct_start':>9} {'dropout':>8} "
        f"{'from epoch':>10} {'val_acc':>8}"
    )
    for trial in sorted(tuner.oracle.trials.values(), key=lambda t: t.trial_id):
        v = trial.hyperparameters.values
        acc = trial.metrics.get_best_value("val_accuracy")
        print(
            f"{trial.trial_id:>5} {v['one_cycle_max_lr']:>8.3g} "
            f"{v['one_cycle_pct_start']:>9.2f} {v['dropout_rate']:>8.2f} "
            f"{v['dropout_start_epoch']:>10d} {acc:>8.4f}"
        )
    best = tuner.get_best_hyperparameters()[0].values
    print(
        "best:",
        {
            k: round(v, 4) if isinstance(v, float) else v
            for k, v in best.items()
        },
    )
    assert np.isfinite(acc)


if __name__ == "__main__":
    main()
