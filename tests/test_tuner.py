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
        model = keras.Sequential(
            [
                keras.Input((4,)),
                keras.layers.Dense(8, activation="relu"),
                keras.layers.Dropout(0.0),
                keras.layers.Dense(1),
            ]
        )
        model.compile(keras.optimizers.SGD(0.01, momentum=0.9), "mse")
        return model

    def build_callbacks(hp):
        callbacks = [
            ktp.tuner.one_cycle_lr(hp, max_lr=(0.01, 0.1)),
            ktp.tuner.dropout_scheduler(hp, rate=(0.1, 0.5), start_epoch=1),
        ]

        class Record(keras.callbacks.Callback):
            def on_train_end(self, logs=None):
                seen.append(
                    (
                        hp.get("one_cycle_max_lr"),
                        hp.get("one_cycle_pct_start"),
                        hp.get("dropout_rate"),
                        list(self.model.history.history["learning_rate"]),
                        list(self.model.history.history["dropout_rate"]),
                    )
                )

        return callbacks + [Record()]

    tuner = kt.RandomSearch(
        ktp.tuner.TunableCallbacks(build_model, build_callbacks),
        objective="loss",
        max_trials=3,
        seed=1,
        directory=str(tmp_path),
        project_name="t",
        overwrite=True,
    )
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
        np.testing.assert_allclose(lrs, [one_cycle(3), one_cycle(7)], rtol=1e-6)
        assert rates == [0.0, pytest.approx(rate)]


def _data():
    rng = np.random.RandomState(0)
    x = rng.rand(64, 4).astype("float32")
    return x, x.sum(1, keepdims=True)


def _model(hp=None):
    model = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(8, activation="relu"),
            keras.layers.Dense(1),
        ]
    )
    model.compile(keras.optimizers.SGD(0.01, momentum=0.9), "mse")
    return model


@pytest.mark.parametrize(
    "kind",
    [
        "random",
        pytest.param("bayesian", marks=pytest.mark.one_backend),
        pytest.param("hyperband", marks=pytest.mark.one_backend),
    ],
)
def test_no_state_leaks_between_trials_with_every_tuner(kind, tmp_path):
    """A callback instance passed to `search` is deep-copied per execution:
    every trial starts newbob from the initial LR (no decayed LR leaks in),
    and the user's instance is untouched. (The trial's own callbacks write
    no learning rate: two writers of one value are an error.)"""
    x, y = _data()
    shared = ktp.callbacks.NewbobLRControl(
        monitor="loss", decay=0.5, relative_error_threshold=-10.0
    )
    starts = []

    class Record(keras.callbacks.Callback):
        def on_train_end(self, logs=None):
            starts.append(self.model.history.history["learning_rate"])

    hypermodel = ktp.tuner.TunableCallbacks(
        _model,
        lambda hp: [
            ktp.callbacks.GradientClipScheduler(hp.Float("clip", 1.0, 10.0)),
            Record(),
        ],
    )
    common = dict(
        objective="loss",
        directory=str(tmp_path),
        project_name=kind,
        overwrite=True,
        seed=0,
    )
    if kind == "random":
        tuner = kt.RandomSearch(hypermodel, max_trials=3, **common)
    elif kind == "bayesian":
        tuner = kt.BayesianOptimization(hypermodel, max_trials=3, **common)
    else:
        tuner = kt.Hyperband(hypermodel, max_epochs=3, factor=3, **common)
    tuner.search(x, y, epochs=3, batch_size=16, verbose=0, callbacks=[shared])
    assert len(starts) >= 3
    for lrs in starts:
        assert lrs[0] == pytest.approx(0.01)  # every trial starts fresh
        # ... and its copy of newbob decays within the trial.
        assert lrs[1:] == pytest.approx([0.01, 0.005][: len(lrs) - 1])
    assert getattr(shared, "_model", None) is None  # never used itself
    best = tuner.get_best_hyperparameters()[0]
    assert 1.0 <= best.get("clip") <= 10.0


def test_lr_search_range_from_the_finder():
    x, y = _data()
    result = ktp.find_lr(
        _model(),
        x,
        y,
        batch_size=8,
        start_lr=1e-4,
        end_lr=1.0,
        num_steps=24,
        verbose=0,
    )
    low, high = ktp.tuner.lr_search_range(result, factor=10.0)
    s = result.suggestion()
    assert 1e-4 * (1 - 1e-9) <= low <= s <= high <= 1.0 * (1 + 1e-9)
    assert low < high
    hp = kt.HyperParameters()
    cb = ktp.tuner.one_cycle_lr(hp, max_lr=(low, high))
    assert low <= cb.max_lr <= high
    with pytest.raises(ValueError, match="factor"):
        ktp.tuner.lr_search_range(result, factor=1.0)


@pytest.mark.tf_only
def test_search_with_distribution_strategy(tmp_path):
    import tensorflow as tf

    x, y = _data()
    hypermodel = ktp.tuner.TunableCallbacks(
        _model, lambda hp: [ktp.tuner.one_cycle_lr(hp)]
    )
    tuner = kt.RandomSearch(
        hypermodel,
        objective="loss",
        max_trials=2,
        directory=str(tmp_path),
        project_name="dist",
        overwrite=True,
        distribution_strategy=tf.distribute.MirroredStrategy(["/cpu:0"]),
    )
    tuner.search(x, y, epochs=2, batch_size=16, verbose=0)
    assert len(tuner.oracle.trials) == 2
