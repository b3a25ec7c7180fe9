"""`_internals.trainer`: metrics attached after build, `compute_loss`
wrapped and unwrapped in order, the train function rebuilt."""

import keras
import numpy as np

from keras_trainplus._internals import trainer


def model():
    m = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    m.compile(optimizer="sgd", loss="mse")
    return m


def test_attached_metric_is_updated_in_fit_and_detached():
    m, x = model(), np.ones((8, 2), "float32")
    m.fit(x, x[:, :1], epochs=1, verbose=0)
    metric = keras.metrics.Sum(name="calls")
    trainer.attach_metric(m, metric)
    assert any(x is metric for x in m.metrics)
    trainer.detach_metric(m, metric)
    assert not any(x is metric for x in m.metrics)


def test_compute_loss_wrappers_nest_and_unwind():
    m, x = model(), np.ones((8, 2), "float32")
    calls = []

    def wrap(tag):
        def make(previous):
            def compute_loss(*args, **kwargs):
                calls.append(tag)
                return previous(*args, **kwargs)

            return compute_loss

        return make

    first = trainer.wrap_compute_loss(m, wrap("a"))
    second = trainer.wrap_compute_loss(m, wrap("b"))
    m.fit(x, x[:, :1], epochs=1, batch_size=8, verbose=0)
    assert calls[:2] == ["b", "a"]
    trainer.unwrap_compute_loss(m, second)
    trainer.unwrap_compute_loss(m, first)
    calls.clear()
    trainer.rebuild_train_function(m)
    m.fit(x, x[:, :1], epochs=1, batch_size=8, verbose=0)
    assert calls == []
