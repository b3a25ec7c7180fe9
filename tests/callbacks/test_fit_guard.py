"""Nothing stays installed when `fit` ends by an exception; one writer per
value; stock LR callbacks compose with base-reading schedules.

Keras 3.15 does not call `on_train_end` when `fit` raises. Every check here
runs a real compiled `fit` that raises (in a callback hook, in the train
step's data, in validation, as `KeyboardInterrupt`), then measures what a
plain `fit` on the same model does afterwards.
"""

import keras
import numpy as np
import pytest
from keras import ops

from keras_trainplus import callbacks as C
from keras_trainplus import find_lr
from keras_trainplus import schedules as S
from tests.helpers import BACKEND
from tests.helpers import fit_probe
from tests.helpers import kernel
from tests.helpers import probe_data
from tests.helpers import probe_model
from tests.helpers import sgd_applied_lrs
from tests.helpers import spe_values

N = 12


class Raise(keras.callbacks.Callback):
    """Raises `error` in hook `where` at the first epoch (or batch) index
    >= `at`."""

    def __init__(self, at=1, where="on_epoch_end", error=RuntimeError):
        super().__init__()
        self.at, self.where, self.error = at, where, error

    def _maybe(self, index):
        # `>=`: with steps_per_execution > 1 batch hooks skip indices.
        if index >= self.at:
            raise self.error("raised by the test")

    def on_epoch_begin(self, epoch, logs=None):
        if self.where == "on_epoch_begin":
            self._maybe(epoch)

    def on_epoch_end(self, epoch, logs=None):
        if self.where == "on_epoch_end":
            self._maybe(epoch)

    def on_train_batch_end(self, batch, logs=None):
        if self.where == "on_train_batch_end":
            self._maybe(batch)

    def on_test_batch_end(self, batch, logs=None):
        if self.where == "on_test_batch_end":
            self._maybe(batch)


def _plain_lrs(model, n=N):
    """LRs a plain `fit` uses now (SGD on the probe: w_i -= lr_i)."""
    before = kernel(model).copy()
    fit_probe(model, n, callbacks=[])
    return (before - kernel(model)).astype(np.float64)


def assert_stock(model):
    """No keras_trainplus wrapper left on the model or its optimizer."""
    opt = model.optimizer
    leftovers = [
        k
        for k in (
            "_get_current_learning_rate",
            "apply",
            "update_step",
            "_backend_update_step",
            "_apply_weight_decay",
            "_clip_gradients",
            "_all_reduce_sum_gradients",
            "save_own_variables",
            "load_own_variables",
        )
        if k in opt.__dict__
    ]
    assert not leftovers, leftovers
    assert "evaluate" not in model.__dict__
    assert "compute_loss" not in model.__dict__
    fn = model.train_function
    assert fn is None or "_keras_trainplus_guarded" not in getattr(
        fn, "__dict__", {}
    )


LR_CALLBACKS = {
    "driver": lambda: C.HyperparameterScheduler(
        {"learning_rate": S.Linear(1.0, 2.0, 100)}
    ),
    "one_cycle": lambda: C.OneCycleLR(
        max_lr=1.0, total_steps=100, cycle_momentum=False
    ),
    "cyclic": lambda: C.CyclicLR(
        0.1, 1.0, step_size_up=5, cycle_momentum=False
    ),
    "warmup_decay": lambda: C.WarmupDecayLR(
        1.0, warmup_steps=10, decay="cosine", total_steps=100
    ),
    "per_epoch": lambda: C.PerEpochLR(
        [1.0, 2.0, 3.0], step_shape=S.Linear(0.5, 1.0, 20)
    ),
    "newbob_shape": lambda: C.NewbobLRControl(
        monitor="loss", initial_lr=1.0, step_shape=S.Linear(0.5, 1.0, 20)
    ),
}


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
@pytest.mark.parametrize("name", sorted(LR_CALLBACKS))
def test_lr_callbacks_leave_nothing_after_an_exception(name, error):
    model = probe_model(N, keras.optimizers.SGD(0.5))
    with pytest.raises(error):
        fit_probe(
            model, N, [LR_CALLBACKS[name](), Raise(1, error=error)], epochs=3
        )
    assert_stock(model)
    assert float(ops.convert_to_numpy(model.optimizer.learning_rate)) == 0.5
    np.testing.assert_allclose(_plain_lrs(model), 0.5, rtol=1e-6)


@pytest.mark.parametrize("spe", spe_values())
@pytest.mark.parametrize(
    "where", ["on_epoch_begin", "on_train_batch_end", "on_test_batch_end"]
)
def test_exception_in_any_hook_or_validation(where, spe):
    model = probe_model(N, keras.optimizers.SGD(0.5), steps_per_execution=spe)
    x, y = probe_data(N)
    with pytest.raises(RuntimeError):
        model.fit(
            x,
            y,
            batch_size=1,
            epochs=3,
            verbose=0,
            shuffle=False,
            validation_data=(x[:2], y[:2]),
            callbacks=[
                C.HyperparameterScheduler(
                    {"learning_rate": S.Linear(1.0, 2.0, 100)}
                ),
                Raise(1, where=where),
            ],
        )
    assert_stock(model)
    np.testing.assert_allclose(_plain_lrs(model), 0.5, rtol=1e-6)


def test_exception_in_the_train_steps_data():
    """A generator that fails mid-epoch: the error leaves `fit` through the
    train step (on every backend)."""
    x, y = probe_data(N)

    def data():
        for i in range(N + 3):
            if i == N + 2:
                raise RuntimeError("bad record")
            j = i % N
            yield x[j : j + 1], y[j : j + 1]

    model = probe_model(N, keras.optimizers.SGD(0.5))
    with pytest.raises(Exception, match="bad record"):
        model.fit(
            data(),
            steps_per_epoch=N,
            epochs=2,
            verbose=0,
            callbacks=[
                C.OneCycleLR(1.0, total_steps=2 * N, cycle_momentum=False)
            ],
        )
    assert_stock(model)
    np.testing.assert_allclose(_plain_lrs(model), 0.5, rtol=1e-6)


def test_exception_in_a_later_on_train_begin_installs_nothing():
    class Fail(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            raise RuntimeError("no")

    model = probe_model(N, keras.optimizers.SGD(0.5))
    with pytest.raises(RuntimeError):
        fit_probe(
            model,
            N,
            [C.OneCycleLR(1.0, total_steps=N, cycle_momentum=False), Fail()],
        )
    assert_stock(model)
    np.testing.assert_allclose(_plain_lrs(model), 0.5, rtol=1e-6)
    before = _snapshot(model)
    with pytest.raises(RuntimeError):
        fit_probe(model, N, [C.LRFinder(num_steps=5), Fail()])
    assert_stock(model)
    for a, b in zip(before, _snapshot(model)):
        np.testing.assert_array_equal(a, b)


def test_momentum_and_weight_decay_restored():
    opt = keras.optimizers.SGD(0.5, momentum=0.9)
    model = probe_model(N, opt)
    with pytest.raises(RuntimeError):
        fit_probe(
            model,
            N,
            [
                C.HyperparameterScheduler(
                    {
                        "momentum": S.Linear(0.5, 0.0, 20),
                        "learning_rate": S.Constant(0.1),
                    }
                ),
                Raise(0),
            ],
            epochs=2,
        )
    assert_stock(model)
    assert opt.momentum == 0.9
    assert float(ops.convert_to_numpy(opt.learning_rate)) == 0.5


def _dropout_model(rate=0.5):
    inputs = keras.Input((4000,))
    outputs = keras.layers.Dropout(rate, name="drop")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(1)(outputs))
    model.compile(keras.optimizers.SGD(0.0), "mse")
    return model


def _dropped_fraction(model):
    layer = model.get_layer("drop")
    out = ops.convert_to_numpy(
        layer(np.ones((8, 4000), "float32"), training=True)
    )
    return float(np.mean(out == 0))


@pytest.mark.parametrize(
    "schedule",
    [{0: 0.1, 1: 0.3}, S.Linear(0.0, 0.9, 8)],
    ids=["per_epoch", "per_step"],
)
def test_dropout_layer_is_stock_after_an_exception(schedule):
    model = _dropout_model(0.5)
    x = np.ones((8, 4000), "float32")
    with pytest.raises(RuntimeError):
        model.fit(
            x,
            np.zeros((8, 1)),
            batch_size=2,
            epochs=3,
            verbose=0,
            callbacks=[C.DropoutScheduler(schedule), Raise(1)],
        )
    layer = model.get_layer("drop")
    assert "call" not in layer.__dict__
    assert layer.rate == 0.5
    assert abs(_dropped_fraction(model) - 0.5) < 0.02
    # A plain fit trains with the layer as it reports itself.
    model.fit(x, np.zeros((8, 1)), batch_size=2, epochs=1, verbose=0)
    assert abs(_dropped_fraction(model) - 0.5) < 0.02


def test_gradient_clip_off_after_an_exception():
    model = probe_model(N, keras.optimizers.SGD(5.0))
    with pytest.raises(RuntimeError):
        fit_probe(
            model, N, [C.GradientClipScheduler({0: 1.0}), Raise(0)], epochs=2
        )
    assert_stock(model)
    # Unclipped: the probe's gradient is 1 per update, so the update is lr.
    model.compile(keras.optimizers.SGD(5.0), loss=model.loss)
    x = np.full((1, N), 10.0, "float32")
    before = kernel(model).copy()
    model.fit(x, np.zeros((1, 1)), batch_size=1, epochs=1, verbose=0)
    np.testing.assert_allclose(before - kernel(model), 50.0, rtol=1e-6)


def _snapshot(model):
    return [
        np.array(ops.convert_to_numpy(v))
        for v in model.variables + model.optimizer.variables
    ]


def _regression(opt):
    keras.utils.set_random_seed(0)  # the same (non-diverging) start anywhere
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 8)).astype("float32")
    y = (x @ rng.normal(size=(8, 1))).astype("float32")
    model = keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(16),
            keras.layers.Dropout(0.1),
            keras.layers.Dense(1),
        ]
    )
    model.compile(opt, "mse")
    return model, x, y


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_lr_finder_interrupted_restores_everything(optimizer):
    opt = (
        keras.optimizers.SGD(0.01, momentum=0.9)
        if optimizer == "sgd"
        else keras.optimizers.Adam(0.01)
    )
    model, x, y = _regression(opt)
    model.fit(x, y, batch_size=8, verbose=0)  # slots hold values
    before = _snapshot(model)
    finder = C.LRFinder(1e-4, 1e-2, num_steps=40, divergence_threshold=None)
    with pytest.raises(KeyboardInterrupt):
        model.fit(
            x,
            y,
            batch_size=8,
            epochs=5,
            verbose=0,
            callbacks=[
                finder,
                Raise(5, "on_train_batch_end", KeyboardInterrupt),
            ],
        )
    after = _snapshot(model)
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a, b)
    assert_stock(model)
    assert finder.result is not None
    assert finder.result.stop_reason == "interrupted"
    assert len(finder.result.losses) == 6
    np.testing.assert_allclose(
        finder.result.lrs, [finder.schedule(i) for i in range(6)]
    )
    assert float(ops.convert_to_numpy(opt.learning_rate)) == pytest.approx(0.01)


def test_find_lr_interrupted_restores_everything():
    model, x, y = _regression(keras.optimizers.SGD(0.05))
    before = _snapshot(model)
    with pytest.raises(KeyboardInterrupt):
        find_lr(
            model,
            x,
            y,
            batch_size=8,
            num_steps=30,
            divergence_threshold=None,
            callbacks=[Raise(3, "on_train_batch_end", KeyboardInterrupt)],
        )
    for a, b in zip(before, _snapshot(model)):
        np.testing.assert_array_equal(a, b)
    assert_stock(model)
    assert float(
        ops.convert_to_numpy(model.optimizer.learning_rate)
    ) == pytest.approx(0.05)


def test_early_stop_and_stop_training_end_normally():
    class Stop(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 2:
                self.model.stop_training = True

    model = probe_model(N, keras.optimizers.SGD(0.5))
    fit_probe(
        model,
        N,
        [C.OneCycleLR(1.0, total_steps=3 * N, cycle_momentum=False), Stop()],
        epochs=3,
    )
    assert_stock(model)


# -- one writer per value ------------------------------------------------------

CONFLICTS = {
    "per_epoch_and_one_cycle": lambda: [
        C.PerEpochLR([0.1, 0.2]),
        C.OneCycleLR(1.0, total_steps=N, cycle_momentum=False),
    ],
    "two_drivers": lambda: [
        C.HyperparameterScheduler({"learning_rate": S.Linear(0.1, 0.2, 9)}),
        C.HyperparameterScheduler({"lr": 0.3}),
    ],
    "lr_and_learning_rate": lambda: [
        C.HyperparameterScheduler({"lr": 0.1, "learning_rate": 0.2})
    ],
    "finder_and_schedule": lambda: [
        C.LRFinder(num_steps=5),
        C.WarmupDecayLR(0.1, warmup_steps=2),
    ],
    "newbob_and_per_epoch": lambda: [
        C.NewbobLRControl(monitor="loss"),
        C.PerEpochLR([0.1, 0.2]),
    ],
    "two_shapes": lambda: [
        C.HyperparameterScheduler(
            {"learning_rate": S.BaseValue() * S.Linear(0, 1, 5)}
        ),
        C.HyperparameterScheduler(
            {"learning_rate": S.BaseValue() * S.Linear(1, 0, 5)}
        ),
    ],
}


@pytest.mark.parametrize("name", sorted(CONFLICTS))
def test_two_writers_of_the_learning_rate_are_an_error(name):
    model = probe_model(N, keras.optimizers.SGD(0.5))
    cbs = CONFLICTS[name]()
    with pytest.raises(ValueError, match="Two writers of one value") as info:
        fit_probe(model, N, cbs, epochs=2)
    assert "learning rate" in str(info.value)
    assert_stock(model)
    np.testing.assert_allclose(_plain_lrs(model), 0.5, rtol=1e-6)


def test_two_writers_of_a_dropout_rate_name_both_targets():
    model = _dropout_model(0.2)
    with pytest.raises(ValueError, match="'dropout:drop'") as info:
        model.fit(
            np.ones((4, 4000)),
            np.zeros((4, 1)),
            verbose=0,
            callbacks=[
                C.HyperparameterScheduler({"dropout": 0.1, "dropout:drop": 0.9})
            ],
        )
    assert "'dropout'" in str(info.value)
    assert model.get_layer("drop").rate == 0.2


def test_momentum_and_beta_1_are_one_value_on_adam():
    model = probe_model(N, keras.optimizers.Adam(0.1))
    with pytest.raises(ValueError, match="beta_1"):
        fit_probe(
            model,
            N,
            [C.HyperparameterScheduler({"momentum": 0.9, "beta_1": 0.8})],
        )


def test_documented_compositions_are_allowed():
    model = probe_model(N, keras.optimizers.SGD(0.5))
    fit_probe(
        model,
        N,
        [
            C.NewbobLRControl(monitor="loss", initial_lr=0.1),
            C.HyperparameterScheduler(
                {"learning_rate": S.BaseValue() * S.Linear(0.5, 1.0, 6)}
            ),
        ],
        epochs=2,
    )
    assert_stock(model)


# -- stock LR callbacks and base-reading schedules ---------------------------


class Score(keras.callbacks.Callback):
    """A monitored value that gets worse every epoch (so ReduceLROnPlateau
    with patience 0 reduces at the end of epoch 1)."""

    def on_epoch_end(self, epoch, logs=None):
        logs["score"] = float(epoch)


def _warmup_run(stock, order, epochs=3):
    n = 6 * epochs
    model = probe_model(n, keras.optimizers.SGD(0.1))
    driver = C.HyperparameterScheduler(
        {"learning_rate": S.BaseValue() * S.Linear(0.0, 1.0, 15)}
    )
    cbs = [driver, stock] if order == "driver_first" else [stock, driver]
    history = fit_probe(model, n, [Score()] + cbs, epochs=epochs)
    return -kernel(model).astype(np.float64), history, model


@pytest.mark.parametrize("order", ["driver_first", "stock_first"])
def test_reduce_lr_on_plateau_scales_the_base(order):
    stock = keras.callbacks.ReduceLROnPlateau(
        monitor="score", mode="min", factor=0.5, patience=0, min_delta=0.0
    )
    lrs, history, model = _warmup_run(stock, order)
    warm = np.minimum(np.arange(18) / 15.0, 1.0)
    base = np.where(np.arange(18) < 12, 0.1, 0.05)
    np.testing.assert_allclose(lrs, base * warm, rtol=1e-6, atol=1e-9)
    assert lrs[12] == pytest.approx(0.04, rel=1e-6)
    # The base each epoch used (ReduceLROnPlateau reduces after epoch 1).
    assert history.history["learning_rate"] == pytest.approx([0.1, 0.1, 0.05])
    assert history.history["effective_learning_rate"][0] == pytest.approx(
        0.1 * 5 / 15
    )
    # Python reads the base (reduced again after epoch 2), no warmup factor.
    assert float(
        ops.convert_to_numpy(model.optimizer.learning_rate)
    ) == pytest.approx(0.025)


@pytest.mark.parametrize("order", ["driver_first", "stock_first"])
def test_identity_learning_rate_scheduler_keeps_the_base(order):
    stock = keras.callbacks.LearningRateScheduler(lambda epoch, lr: lr)
    lrs, _, _ = _warmup_run(stock, order)
    warm = np.minimum(np.arange(18) / 15.0, 1.0)
    np.testing.assert_allclose(lrs, 0.1 * warm, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("order", ["driver_first", "stock_first"])
def test_stock_writer_of_an_owned_learning_rate_is_an_error(order):
    model = probe_model(N, keras.optimizers.SGD(0.5))
    owner = C.OneCycleLR(1.0, total_steps=3 * N, cycle_momentum=False)
    stock = keras.callbacks.LearningRateScheduler(lambda epoch, lr: 0.01)
    cbs = [owner, stock] if order == "driver_first" else [stock, owner]
    with pytest.raises(ValueError, match="Two writers of one value"):
        fit_probe(model, N, cbs, epochs=3)
    assert_stock(model)


def test_newbob_and_a_stock_writer_is_an_error():
    model = probe_model(N, keras.optimizers.SGD(0.5))
    stock = keras.callbacks.ReduceLROnPlateau(
        monitor="score", mode="min", factor=0.5, patience=0
    )
    with pytest.raises(ValueError, match="NewbobLRControl"):
        fit_probe(
            model,
            N,
            [Score(), C.NewbobLRControl(monitor="loss"), stock],
            epochs=4,
        )
    assert_stock(model)


@pytest.mark.skipif(BACKEND == "torch", reason="torch: spe 1 only")
def test_guard_costs_no_retrace_and_unwraps_after_fit():
    model = probe_model(N, keras.optimizers.SGD(0.5), steps_per_execution=4)
    fit_probe(model, N, [C.OneCycleLR(1.0, cycle_momentum=False)], epochs=2)
    assert_stock(model)


@pytest.mark.parametrize(
    "schedule",
    [S.Linear(2.0, 8.0, 10), {0: 3.0, 1: 6.0}],
    ids=["per_step", "per_epoch"],
)
def test_augmentation_knob_restored_after_an_exception(schedule):
    from keras_trainplus import layers as L

    inputs = keras.Input((8, 8, 1))
    cut = L.Cutout(4, name="cut")
    x = cut(inputs)
    model = keras.Model(
        inputs, keras.layers.Dense(1)(keras.layers.Flatten()(x))
    )
    model.compile(keras.optimizers.SGD(0.01), "mse")
    data = np.ones((8, 8, 8, 1), "float32")
    sched = schedule if not isinstance(schedule, dict) else S.PerEpoch(schedule)
    with pytest.raises(RuntimeError):
        model.fit(
            data,
            np.zeros((8, 1)),
            batch_size=2,
            epochs=3,
            verbose=0,
            callbacks=[
                C.HyperparameterScheduler({"cut.size": sched}),
                Raise(1),
            ],
        )
    assert float(ops.convert_to_numpy(cut.knobs["size"])) == 4.0
    assert not cut._trainplus_knobs.programs
    assert_stock(model)
    # The layer cuts its own 4x4 hole again: 16 of 64 pixels (clipped holes
    # at borders cut fewer; the largest count is 16).
    out = ops.convert_to_numpy(cut(ops.ones((64, 8, 8, 1)), training=True))
    assert (out == 0).reshape(64, -1).sum(axis=1).max() == 16


def test_scheduled_dropout_layer_restored_after_an_exception():
    from keras_trainplus import layers as L

    inputs = keras.Input((4000,))
    drop = L.ScheduledDropout(0.5, name="drop")
    model = keras.Model(inputs, keras.layers.Dense(1)(drop(inputs)))
    model.compile(keras.optimizers.SGD(0.0), "mse")
    with pytest.raises(RuntimeError):
        model.fit(
            np.ones((8, 4000)),
            np.zeros((8, 1)),
            batch_size=2,
            epochs=3,
            verbose=0,
            callbacks=[C.DropoutScheduler(S.Linear(0.0, 0.9, 8)), Raise(1)],
        )
    assert drop.current_rate == pytest.approx(0.5)
    assert abs(_dropped_fraction(model) - 0.5) < 0.02


# -- found by a review as a new user -------------------------------------------


def test_exception_outside_the_hooks_is_undone_by_the_next_fit():
    """Keras raises while building the validation iterator (mismatched
    rows), outside every guarded call: the next `fit` starts stock."""
    model = probe_model(N, keras.optimizers.SGD(0.5))
    x, y = probe_data(N)
    with pytest.raises(ValueError):
        model.fit(
            x,
            y,
            batch_size=1,
            epochs=2,
            verbose=0,
            validation_data=(x[:5], y[:4]),
            callbacks=[
                C.OneCycleLR(1.0, total_steps=2 * N, cycle_momentum=False)
            ],
        )
    np.testing.assert_allclose(_plain_lrs(model), 0.5, rtol=1e-6)
    assert_stock(model)


def test_exception_in_reset_metrics_is_undone():
    class Fragile(keras.metrics.MeanSquaredError):
        calls = 0

        def reset_state(self):
            Fragile.calls += 1
            if Fragile.calls >= 2:
                raise RuntimeError("reset failed")
            super().reset_state()

    model = probe_model(N, keras.optimizers.SGD(0.5))
    model.compile(
        keras.optimizers.SGD(0.5), loss=model.loss, metrics=[Fragile()]
    )
    with pytest.raises(RuntimeError):
        fit_probe(
            model,
            N,
            [
                C.HyperparameterScheduler(
                    {"learning_rate": S.Linear(1.0, 2.0, 100)}
                )
            ],
            epochs=4,
        )
    assert_stock(model)
    assert float(ops.convert_to_numpy(model.optimizer.learning_rate)) == 0.5


def test_a_later_target_out_of_range_leaves_nothing_installed():
    model = probe_model(N, keras.optimizers.SGD(0.5, momentum=0.9))
    with pytest.raises(ValueError, match="momentum"):
        fit_probe(
            model,
            N,
            [
                C.HyperparameterScheduler(
                    {
                        "learning_rate": S.Linear(1.0, 2.0, 100),
                        "momentum": S.Linear(0.5, 1.5, 20),
                    }
                )
            ],
            epochs=2,
        )
    assert_stock(model)
    assert float(ops.convert_to_numpy(model.optimizer.learning_rate)) == 0.5


@pytest.mark.parametrize(
    "make,argument",
    [
        (
            lambda: C.PerEpochLR([0.1], step_shape=S.Linear(-1.0, 1.0, 5)),
            "step_shape",
        ),
        (
            lambda: C.HyperparameterScheduler(
                {
                    "learning_rate": S.Join(
                        [S.Constant(0.1), S.Constant(-5.0), S.Constant(0.1)],
                        boundaries=[2, 3],
                    )
                }
            ),
            "schedules['learning_rate']",
        ),
        (
            lambda: C.CyclicLR(
                0.1,
                0.5,
                step_size_up=2,
                cycle_momentum=False,
                scale_fn=lambda c: -1.0,
            ),
            "scale_fn",
        ),
        (
            lambda: C.NewbobLRControl(
                monitor="loss",
                initial_lr=0.1,
                step_shape=S.Linear(-1.0, 1.0, 5),
            ),
            "step_shape",
        ),
    ],
)
def test_values_out_of_range_anywhere_in_the_run(make, argument):
    model = probe_model(N, keras.optimizers.SGD(0.5))
    with pytest.raises(ValueError) as info:
        fit_probe(model, N, [make()])
    assert f"`{argument}" in str(info.value)
    np.testing.assert_allclose(kernel(model), 0.0)  # before any update
    assert_stock(model)


@pytest.mark.parametrize(
    "make",
    [
        lambda: C.PerEpochLR([0.1], step_shape=S.PerEpoch([1.0])),
        lambda: C.NewbobLRControl(
            monitor="loss", step_shape=S.BaseValue() * S.Linear(0, 1, 5)
        ),
    ],
)
def test_step_shape_with_a_base_is_a_construction_error(make):
    with pytest.raises(ValueError, match="`step_shape`"):
        make()


@pytest.mark.parametrize("order", ["owner_first", "stock_first"])
def test_stock_writer_of_an_owned_lr_is_seen_in_a_single_epoch(order):
    model = probe_model(N, keras.optimizers.SGD(0.5))
    owner = C.OneCycleLR(1.0, cycle_momentum=False)
    stock = keras.callbacks.LearningRateScheduler(lambda epoch, lr: 0.01)
    cbs = [owner, stock] if order == "owner_first" else [stock, owner]
    with pytest.raises(ValueError, match="Two writers of one value"):
        fit_probe(model, N, cbs, epochs=1)
    assert_stock(model)


def test_per_epoch_lr_composes_with_a_base_reading_shape():
    """A bare `PerEpochLR` writes the base only; a driver's
    `BaseValue() * shape` multiplies it per step."""
    model = probe_model(N, keras.optimizers.SGD(0.5))
    shape = S.Linear(0.0, 1.0, 10)
    fit_probe(
        model,
        N,
        [
            C.PerEpochLR([0.1, 0.05]),
            C.HyperparameterScheduler({"learning_rate": S.BaseValue() * shape}),
        ],
        epochs=2,
    )
    base = np.repeat([0.1, 0.05], N // 2)
    expected = base * np.array([shape(i) for i in range(N)])
    np.testing.assert_allclose(
        sgd_applied_lrs(model), expected, rtol=1e-6, atol=1e-9
    )


def test_dropout_rates_stay_exact_python_floats():
    inputs = keras.Input((10, 4))
    out = keras.layers.SpatialDropout1D(0.2, name="sp")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(1)(out))
    model.compile(keras.optimizers.SGD(0.0), "mse")
    x, y = np.ones((4, 10, 4), "float32"), np.zeros((4, 10, 1), "float32")
    with pytest.raises(RuntimeError):
        model.fit(
            x,
            y,
            epochs=3,
            verbose=0,
            callbacks=[C.DropoutScheduler({0: 0.3, 1: 0.6}), Raise(1)],
        )
    assert model.get_layer("sp").rate == 0.2
    model.fit(
        x,
        y,
        epochs=2,
        verbose=0,
        callbacks=[C.DropoutScheduler({0: 0.3, 1: 0.6})],
    )
    assert model.get_layer("sp").rate == 0.6
    assert model.get_layer("sp").get_config()["rate"] == 0.6


def test_augmentation_knobs_use_the_layers_own_range_and_config():
    from keras_trainplus import layers as L

    def model_with(cut):
        inputs = keras.Input((8, 8, 1))
        model = keras.Model(
            inputs, keras.layers.Dense(1)(keras.layers.Flatten()(cut(inputs)))
        )
        model.compile(keras.optimizers.SGD(0.0), "mse")
        return model

    data, target = np.ones((4, 8, 8, 1), "float32"), np.zeros((4, 1))
    frac = L.Cutout(0.25, name="cutout")
    with pytest.raises(ValueError, match="cutout.size"):
        model_with(frac).fit(
            data,
            target,
            epochs=2,
            verbose=0,
            callbacks=[
                C.HyperparameterScheduler(
                    {"cutout.size": S.PerEpoch({0: 0.25, 1: 5.0})}
                )
            ],
        )
    assert frac.knob_value("size") == 0.25 and frac.size == 0.25
    cut = L.Cutout(4, name="cutout")
    model_with(cut).fit(
        data,
        target,
        epochs=2,
        verbose=0,
        callbacks=[
            C.HyperparameterScheduler({"cutout.size": S.PerEpoch({0: 2, 1: 8})})
        ],
    )
    assert cut.knob_value("size") == 8.0
    assert cut.size == 8 and cut.get_config()["size"] == 8
