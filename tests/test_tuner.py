"""keras-tuner: callback hyperparameters declared in build (so trial 1 is
searched too), applied in fit, and measured in the trained model."""

import keras
import numpy as np
import pytest

import keras_trainplus as ktp

kt = pytest.importorskip("keras_tuner")


def test_helpers_declare_ranges_and_build_callbacks():
    hp = kt.HyperParameters()
    cb = ktp.tuner.one_cycle_lr(hp, max_lr=(0.01, 0.1))
    assert isinstance(cb, ktp.callbacks.OneCycleLR)
    assert 0.01 <= hp.get("one_cycle_max_lr") <= 0.1
    cyc = ktp.tuner.cyclic_lr(hp, step_size_up=100, mode="triangular2")
    assert isinstance(cyc, ktp.callbacks.CyclicLR)
    assert hp.get("cyclic_step_size_up") == 100
    nb = ktp.tuner.newbob(hp, decay=0.5, monitor="loss")
    assert hp.get("newbob_decay") == 0.5
    assert isinstance(nb, ktp.callbacks.NewbobLRControl)
    dr = ktp.tuner.dropout_scheduler(hp, rate=(0.1, 0.2), start_epoch=2)
    assert isinstance(dr, ktp.callbacks.DropoutScheduler)
    with pytest.raises(ValueError, match="callables"):
        ktp.tuner.TunableCallbacks(None, lambda hp: [])


def test_search_tunes_callbacks_from_trial_one(tmp_path):
    rng = np.random.RandomState(0)
    x = rng.rand(64, 4).astype("float32")
    y = x.sum(1, keepdims=True)
    seen = []

    def build_model(hp):
        model = keras.Sequential([
            keras.Input((4,)),
            keras.layers.Dense(8, activation="relu"),
            keras.layers.Dropout(0.0),
            keras.layers.Dense(1)])
        model.compile(keras.optimizers.SGD(0.01, momentum=0.9), "mse")
        return model

    def build_callbacks(hp):
        callbacks = [ktp.tuner.one_cycle_lr(hp, max_lr=(0.01, 0.1)),
                     ktp.tuner.dropout_scheduler(hp, rate=(0.1, 0.5),
                                                 start_epoch=1)]

        class Record(keras.callbacks.Callback):
            def on_train_end(self, logs=None):
                seen.append((hp.get("one_cycle_max_lr"),
                             hp.get("one_cycle_pct_start"),
                             hp.get("dropout_rate"),
                             list(self.model.history.history
                                  ["learning_rate"]),
                             list(self.model.history.history
                                  ["dropout_rate"])))

        return callbacks + [Record()]

    tuner = kt.RandomSearch(
        ktp.tuner.TunableCallbacks(build_model, build_callbacks),
        objective="loss", max_trials=3, seed=1,
        directory=str(tmp_path), project_name="t", overwrite=True)
    tuner.search(x, y, epochs=2, batch_size=16, verbose=0)
    assert len(seen) == 3
    max_lrs = [s[0] for s in seen]
    from keras_trainplus import schedules as S

    # Trial 1 is searched too (not stuck at the range's minimum), and the
    # trials differ.
    assert max_lrs[0] != 0.01 and len(set(max_lrs)) == 3
    for max_lr, pct, rate, lrs, rates in seen:
        # The tuned values reached training: 2 epochs of 4 updates, the
        # logged LR is each epoch's last update's.
        one_cycle = S.OneCycle(max_lr, 8, pct_start=pct)
        np.testing.assert_allclose(lrs, [one_cycle(3), one_cycle(7)],
                                   rtol=1e-6)
        assert rates == [0.0, pytest.approx(rate)]
