"""A training process for the newbob resume test (run as a subprocess).

Usage: python _newbob_worker.py STATE_FILE OUT_JSON EPOCHS INITIAL_EPOCH
                                KILL_AFTER_EPOCH BACKUP_DIR

Trains a small model with NewbobLRControl and a state file. The monitored
value is scripted (a callback listed before newbob overwrites
`logs["val_loss"]` with a fixed sequence), so the LR decisions do not depend
on floating-point details of training and an interrupted run can be compared
with an uninterrupted one. With KILL_AFTER_EPOCH >= 0 the process SIGKILLs
itself at the end of that epoch (after newbob has saved its state), like a
crash. BACKUP_DIR ("-" for none) adds `keras.callbacks.BackupAndRestore`.
The LR every epoch's compiled steps used is appended to OUT_JSON.
"""

import json
import os
import signal
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_trainplus.callbacks import NewbobLRControl  # noqa: E402

SCORES = [
    2.0,
    1.9,
    1.89,
    1.88,
    1.7,
    1.69,
    1.689,
    1.6,
    1.599,
    1.5985,
    1.5,
    1.49,
    1.489,
    1.3,
    1.2999,
    1.29,
]


class Scripted(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        logs["val_loss"] = SCORES[epoch]


class Record(keras.callbacks.Callback):
    def __init__(self, out, kill_after):
        super().__init__()
        self.out, self.kill_after = out, kill_after

    def on_epoch_begin(self, epoch, logs=None):
        self.lr = float(
            keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)
        )

    def on_epoch_end(self, epoch, logs=None):
        rows = []
        if os.path.exists(self.out):
            with open(self.out) as f:
                rows = json.load(f)
        rows.append([epoch, self.lr])
        with open(self.out, "w") as f:
            json.dump(rows, f)
        if epoch == self.kill_after:
            os.kill(os.getpid(), signal.SIGKILL)


def main(state, out, epochs, initial_epoch, kill_after, backup):
    keras.utils.set_random_seed(0)
    x = np.random.RandomState(0).normal(size=(64, 4)).astype("float32")
    y = x.sum(axis=1, keepdims=True)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(0.01), loss="mse")
    callbacks = [
        Scripted(),
        NewbobLRControl(
            "newbob_multi_epoch",
            multi_num_epochs=2,
            multi_update_interval=1,
            initial_lr=0.01,
            learning_rates={0: 0.002, 1: 0.005},
            state_file=state,
        ),
        Record(out, kill_after),
    ]
    if backup != "-":
        callbacks.insert(0, keras.callbacks.BackupAndRestore(backup))
    model.fit(
        x,
        x.sum(axis=1, keepdims=True),
        validation_data=(x, y),
        epochs=epochs,
        initial_epoch=initial_epoch,
        verbose=0,
        callbacks=callbacks,
    )


if __name__ == "__main__":
    a = sys.argv[1:]
    main(a[0], a[1], int(a[2]), int(a[3]), int(a[4]), a[5])
