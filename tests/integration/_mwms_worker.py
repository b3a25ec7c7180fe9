"""One worker of the 2-worker MultiWorkerMirroredStrategy test.

Started twice by test_multi_worker.py through
`keras_trainplus.distribute.launch_local_workers`. Trains with newbob (its
state file per worker path: only the chief may write), a per-step warmup
shape, dropout scheduling, clip switching and a Cutout layer, then prints
one RESULT line with the final weights' digest.
"""

import hashlib
import json
import os
import sys

os.environ["KERAS_BACKEND"] = "tensorflow"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_trainplus as ktp  # noqa: E402
from keras_trainplus import schedules as S  # noqa: E402

OUT = sys.argv[1]
INDEX = json.loads(os.environ["TF_CONFIG"])["task"]["index"]

ktp.distribute.fix_multi_worker_fit()
strategy = tf.distribute.MultiWorkerMirroredStrategy()

with strategy.scope():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1))
    h = ktp.layers.Cutout(3, seed=1)(inputs)
    h = keras.layers.Flatten()(h)
    h = keras.layers.Dense(16, activation="relu")(h)
    h = keras.layers.Dropout(0.0, seed=2)(h)
    outputs = keras.layers.Dense(1)(h)
    model = keras.Model(inputs, outputs)
    model.compile(keras.optimizers.SGD(0.05, momentum=0.9), loss="mse")

rng = np.random.default_rng(0)  # the same array on both workers
x = rng.normal(size=(256, 8, 8, 1)).astype("float32")
y = x.mean(axis=(1, 2, 3))[:, None].astype("float32") * 4.0

newbob = ktp.callbacks.NewbobLRControl(
    monitor="loss",
    state_file=os.path.join(OUT, f"newbob_{INDEX}.json"),
    decay=0.5,
    relative_error_threshold=-10.0,  # decays every epoch
    step_shape=S.Linear(0.1, 1.0, 6),
)
callbacks = [
    newbob,
    ktp.callbacks.DropoutScheduler({0: 0.0, 1: 0.3}),
    ktp.callbacks.GradientClipScheduler({0: 0.5, 2: None}),
    # unseeded: the seed variable takes the chief's value on every worker
    ktp.callbacks.GradientNoise(0.01),
    ktp.callbacks.GradientAccumulationScheduler({0: 1, 1: 2}),
    ktp.callbacks.DiscriminativeLR(decay=0.5),
    ktp.callbacks.GradualUnfreezing({0: 1, 1: "all"}),
]
history = model.fit(
    x, y, batch_size=32, epochs=3, shuffle=False, verbose=0, callbacks=callbacks
)
weights = np.concatenate([np.ravel(w) for w in model.get_weights()])
print(
    "RESULT "
    + json.dumps(
        {
            "index": INDEX,
            "chief": ktp.distribute.is_chief(),
            "replicas": strategy.num_replicas_in_sync,
            "digest": hashlib.sha256(weights.tobytes()).hexdigest(),
            "weight_sum": float(weights.sum()),
            "history": {
                k: [float(v) for v in vals]
                for k, vals in history.history.items()
            },
        }
    ),
    flush=True,
)
