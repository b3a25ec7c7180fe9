"""`_internals.trainer.set_post_update`: a function run in the compiled
step after every update sees the updated weights (BatchNormalization
statistics included) and its optimizer-variable writes persist, at
`steps_per_execution` > 1 and on JAX's stateless step."""

import keras
import numpy as np
from keras import ops

from keras_trainplus import _internals as internals
from tests.helpers import spe_values

DECAY = 0.9


def _model(spe):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(3),
            keras.layers.BatchNormalization(),
            keras.layers.Dense(1),
        ]
    )
    model.compile(keras.optimizers.SGD(0.1), "mse", steps_per_execution=spe)
    model.optimizer.build(model.trainable_variables)
    return model


def _data():
    rng = np.random.default_rng(0)
    return (
        rng.normal(size=(64, 4)).astype("float32"),
        rng.normal(size=(64, 1)).astype("float32"),
    )


def test_post_update_averages_every_step_exactly():
    x, y = _data()
    results = []
    for spe in spe_values():
        model = _model(spe)
        opt = model.optimizer
        weights = list(model.weights)  # BN moving statistics included
        averages = [
            opt.add_variable(w.shape, name=f"avg_{i}")
            for i, w in enumerate(weights)
        ]
        count = opt.add_variable((), dtype="int32", name="count")
        for v in [*averages, count]:
            internals.optimizer.attach_hidden_optimizer_state(opt, v)

        def post():
            decay = ops.where(count.value == 0, 0.0, DECAY)
            for w, a in zip(weights, averages):
                a.assign(decay * a.value + (1.0 - decay) * w.value)
            count.assign(count.value + 1)

        internals.trainer.set_post_update(model, "average", post)
        model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
        internals.trainer.set_post_update(model, "average", None)
        assert "train_step" not in model.__dict__
        assert int(ops.convert_to_numpy(count)) == 16
        results.append([ops.convert_to_numpy(a) for a in averages])

    # Reference: the same run, averaged on the host after every batch.
    model = _model(1)
    reference, seen = [np.zeros(w.shape) for w in model.weights], [0]

    class Average(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            decay = 0.0 if seen[0] == 0 else DECAY
            for i, w in enumerate(self.model.weights):
                reference[i] = decay * reference[i] + (1 - decay) * w.numpy()
            seen[0] += 1

    model.fit(
        x,
        y,
        batch_size=8,
        epochs=2,
        shuffle=False,
        verbose=0,
        callbacks=[Average()],
    )
    for averages in results:
        for a, r in zip(averages, reference):
            np.testing.assert_allclose(a, r, rtol=1e-5, atol=1e-6)
