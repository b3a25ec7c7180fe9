"""Probe pieces shared by the distribution probes (`_mirrored_probe.py`,
`_data_parallel_probe.py`): scripted logs, a knob read through a Keras
schedule, losses that expose dropout and clipping, the per-epoch update
norm."""

import keras
import numpy as np


class ScriptedLoss(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        logs["val_loss"] = 1.0  # no progress: newbob decays from epoch 2


class KnobLR(keras.optimizers.schedules.LearningRateSchedule):
    def __init__(self, knob):
        self.knob = knob

    def __call__(self, step):
        return self.knob.read()


class SetKnob(keras.callbacks.Callback):
    def __init__(self, knob):
        super().__init__()
        self.knob = knob

    def on_epoch_begin(self, epoch, logs=None):
        self.knob.assign(0.1 * (epoch + 1), model=self.model)


def zero_frac(y_true, y_pred):
    return keras.ops.mean(
        keras.ops.cast(keras.ops.equal(y_pred, 0.0), "float32")
    )


def clip_loss(y_true, y_pred):
    return y_true[:, 0] * y_pred[:, 0]


class UpdateNorm(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.norms = []

    def on_epoch_begin(self, epoch, logs=None):
        self.w0 = np.array(
            keras.ops.convert_to_numpy(self.model.layers[-1].kernel)
        )

    def on_epoch_end(self, epoch, logs=None):
        w1 = np.array(keras.ops.convert_to_numpy(self.model.layers[-1].kernel))
        logs["update_norm"] = (
            float(np.linalg.norm(w1 - self.w0)) / self.params["steps"]
        )
