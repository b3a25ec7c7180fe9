"""One process of the 2-process `keras.distribution` test on JAX (CPU).

Usage: _jax_process_worker.py OUT PROCESS_ID NUM_PROCESSES COORDINATOR
(NUM_PROCESSES 1: a plain one-device run on the whole global batch, the
reference). Each process joins the cluster with
`keras.distribution.initialize`, trains under `DataParallel` on its own
half of every global batch, with newbob (a state file per process path:
only process 0 may write), a per-step warmup shape, dropout scheduling,
clip switching and a Cutout layer, then prints one RESULT line.
"""

import hashlib
import json
import os
import sys

os.environ["KERAS_BACKEND"] = "jax"

import jax  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_trainplus as ktp  # noqa: E402
from keras_trainplus import schedules as S  # noqa: E402

OUT = sys.argv[1]
INDEX, COUNT = int(sys.argv[2]), int(sys.argv[3])
GLOBAL_BATCH = 32

if COUNT > 1:
    keras.distribution.initialize(
        job_addresses=sys.argv[4], num_processes=COUNT, process_id=INDEX
    )
    # Each process feeds its own rows of every global batch.
    keras.distribution.set_distribution(
        keras.distribution.DataParallel(
            devices=jax.devices(), auto_shard_dataset=False
        )
    )

keras.utils.set_random_seed(0)
inputs = keras.Input((8, 8, 1))
h = ktp.layers.Cutout(3, seed=1)(inputs)
h = keras.layers.Flatten()(h)
h = keras.layers.Dense(16, activation="relu")(h)
h = keras.layers.Dropout(0.0, seed=2)(h)
outputs = keras.layers.Dense(1)(h)
model = keras.Model(inputs, outputs)
model.compile(keras.optimizers.SGD(0.05, momentum=0.9), loss="mse")

rng = np.random.default_rng(0)  # the same arrays in every process
x = rng.normal(size=(256, 8, 8, 1)).astype("float32")
y = x.mean(axis=(1, 2, 3))[:, None].astype("float32") * 4.0
local = GLOBAL_BATCH // COUNT
rows = np.arange(len(x)).reshape(-1, COUNT, local)[:, INDEX].ravel()

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
]
history = model.fit(
    x[rows],
    y[rows],
    batch_size=local,
    epochs=3,
    shuffle=False,
    verbose=0,
    callbacks=callbacks,
)
weights = np.concatenate([np.ravel(w) for w in model.get_weights()])
print(
    "RESULT "
    + json.dumps(
        {
            "index": INDEX,
            "processes": jax.process_count(),
            "devices": len(jax.devices()),
            "chief": ktp.distribute.is_chief(),
            "digest": hashlib.sha256(weights.tobytes()).hexdigest(),
            "weights": weights.tolist(),
            "history": {
                k: [float(v) for v in vals]
                for k, vals in history.history.items()
            },
        }
    ),
    flush=True,
)
