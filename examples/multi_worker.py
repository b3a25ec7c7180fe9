"""Multi-worker training on one machine: 2 workers, MultiWorkerMirroredStrategy.

Run without TF_CONFIG, this script launches itself as a local 2-worker
cluster (`keras_trainplus.distribute.launch_local_workers`: free ports,
TF_CONFIG per process) and checks that both workers end with identical
weights. Each worker trains an MLP on scikit-learn's digits with newbob
(state file written by the chief only), a per-step warmup, dropout
scheduling, clip switching and Cutout.

    python examples/multi_worker.py [--fast]
"""

import argparse
import hashlib
import json
import os
import sys
import tempfile

os.environ["KERAS_BACKEND"] = "tensorflow"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def worker(args):
    import keras
    import numpy as np
    import tensorflow as tf
    from sklearn.datasets import load_digits

    import keras_trainplus as ktp
    from keras_trainplus import schedules as S

    ktp.distribute.fix_multi_worker_fit()  # Keras 3.15 / TF 2.21 bugs
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype("float32").reshape(-1, 8, 8, 1)
    with strategy.scope():
        keras.utils.set_random_seed(0)
        model = keras.Sequential(
            [
                keras.Input((8, 8, 1)),
                ktp.layers.Cutout(3, seed=1),
                keras.layers.Flatten(),
                keras.layers.Dense(128, activation="relu"),
                keras.layers.Dropout(0.0),
                keras.layers.Dense(10),
            ]
        )
        model.compile(
            keras.optimizers.SGD(0.1, momentum=0.9),
            keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
    callbacks = [
        ktp.callbacks.NewbobLRControl(
            monitor="loss",
            state_file=os.path.join(args.out, "newbob.json"),
            step_shape=S.Linear(0.1, 1.0, 50),
        ),
        ktp.callbacks.DropoutScheduler({0: 0.0, 1: 0.2}),
        ktp.callbacks.GradientClipScheduler({0: 5.0, 2: None}),
    ]
    history = model.fit(
        x,
        y,
        batch_size=64,
        epochs=2 if args.fast else 6,
        verbose=0,
        callbacks=callbacks,
    )
    weights = np.concatenate([np.ravel(w) for w in model.get_weights()])
    print(
        "RESULT "
        + json.dumps(
            {
                "chief": ktp.distribute.is_chief(),
                "digest": hashlib.sha256(weights.tobytes()).hexdigest()[:16],
                "accuracy": history.history["accuracy"][-1],
                "learning_rate": history.history["learning_rate"],
            }
        ),
        flush=True,
    )


def launch(args):
    import keras_trainplus as ktp

    out = args.out or tempfile.mkdtemp(prefix="ktp_multi_worker_")
    command = [sys.executable, os.path.abspath(__file__), "--out", out]
    if args.fast:
        command.append("--fast")
    results = ktp.distribute.launch_local_workers(
        command, num_workers=2, timeout=600
    )
    summaries = []
    for index, r in enumerate(results):
        lines = [ln for ln in r.stdout.splitlines() if ln.startswith("RESULT ")]
        if r.returncode != 0 or not lines:
            print(r.stdout[-3000:])
            raise SystemExit(f"worker {index} failed")
        summaries.append(json.loads(lines[-1][len("RESULT ") :]))
        print(f"worker {index}: {summaries[-1]}")
    same = len({s["digest"] for s in summaries}) == 1
    print("workers agree (identical weights):", same)
    print(
        "chief's state file:",
        os.path.join(out, "newbob.json"),
        os.path.exists(os.path.join(out, "newbob.json")),
    )
    if not same:
        raise SystemExit(1)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--fast", action="store_true")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    if "TF_CONFIG" in os.environ:
        worker(args)
    else:
        launch(args)
