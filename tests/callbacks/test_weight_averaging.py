"""`WeightEMA` and `StochasticWeightAveraging`: the averages equal torch's
`AveragedModel` on the trajectory `fit` ran (in-graph, at every
`steps_per_execution`), SWA's learning rate equals torch's `SWALR` per
update, validation runs on the averages and leaves the raw weights bit for
bit, BatchNormalization statistics are recomputed, resuming continues the
average, and the model is stock after every way out of `fit`."""

import copy

import keras
import numpy as np
import pytest
import torch
from torch.optim import swa_utils

from keras_trainplus import callbacks as C
from keras_trainplus import schedules as S
from tests.helpers import fit_probe
from tests.helpers import probe_model
from tests.helpers import sgd_applied_lrs
from tests.helpers import spe_values

B = 8


def _data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype("float32")
    return x, (x @ np.array([[1.0], [-2.0], [0.5], [3.0]])).astype("float32")


def _model(spe=1, optimizer=None, seed=0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(6, activation="tanh"),
            keras.layers.BatchNormalization(),
            keras.layers.Dense(1),
        ]
    )
    model.compile(
        optimizer or keras.optimizers.SGD(0.05, momentum=0.5),
        "mse",
        steps_per_execution=spe,
    )
    return model


class _Trajectory(keras.callbacks.Callback):
    """Every float weight after every update (spe 1) or epoch end."""

    def __init__(self):
        super().__init__()
        self.steps, self.epochs = [], []

    def _weights(self):
        return [np.array(w.numpy()) for w in self.model.weights]

    def on_train_batch_end(self, batch, logs=None):
        self.steps.append(self._weights())

    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append(self._weights())


def _torch_average(trajectory, multi_avg_fn=None):
    """torch's `AveragedModel` (buffers included) fed the trajectory."""
    params = [torch.nn.Parameter(torch.tensor(w)) for w in trajectory[0]]
    module = torch.nn.ParameterList(params)
    averaged = swa_utils.AveragedModel(
        module, multi_avg_fn=multi_avg_fn, use_buffers=True
    )
    for weights in trajectory:
        with torch.no_grad():
            for p, w in zip(params, weights):
                p.copy_(torch.tensor(w))
        averaged.update_parameters(module)
    return [p.detach().numpy() for p in averaged.module.parameters()]


def _close(actual, expected, rtol=1e-6, atol=1e-7):
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        np.testing.assert_allclose(a, e, rtol=rtol, atol=atol)


def _stock(model):
    assert "train_step" not in model.__dict__
    for obj in (
        model,
        model.optimizer,
        getattr(model.optimizer, "inner_optimizer", None),
    ):
        leftover = [k for k in vars(obj or model) if "keras_trainplus" in k]
        assert not leftover, leftover
    for name in ("evaluate", "make_train_function"):
        assert name not in model.__dict__, name
    opt = model.optimizer
    assert "save_own_variables" not in opt.__dict__
    names = [v.name for v in opt.variables]
    assert not any("ema" in n for n in names), names


# -- WeightEMA ---------------------------------------------------------------


def test_ema_equals_torch_averaged_model_at_every_spe():
    x, y = _data()
    reference = _Trajectory()
    _model().fit(
        x,
        y,
        batch_size=B,
        epochs=2,
        shuffle=False,
        verbose=0,
        callbacks=[reference],
    )
    expected = _torch_average(
        reference.steps, swa_utils.get_ema_multi_avg_fn(0.9)
    )
    for spe in spe_values():
        model = _model(spe)
        history = model.fit(
            x,
            y,
            batch_size=B,
            epochs=2,
            shuffle=False,
            verbose=0,
            callbacks=[C.WeightEMA(decay=0.9)],
        ).history
        _close(model.get_weights(), expected)
        assert history["ema_decay"] == [pytest.approx(0.9)] * 2
        assert isinstance(history["ema_decay"][0], float)
        _stock(model)


def test_ema_warmup_and_every_n_steps_follow_timm():
    x, y = _data()
    reference = _Trajectory()
    _model().fit(
        x,
        y,
        batch_size=B,
        epochs=3,
        shuffle=False,
        verbose=0,
        callbacks=[reference],
    )
    gamma, power, floor, cap, n = 2.0, 0.75, 0.1, 0.95, 3
    average, t, decays = None, 0, []
    for i, weights in enumerate(reference.steps, start=1):
        if i % n:
            continue
        decay = min(max(1 - (1 + t / gamma) ** -power, floor), cap)
        if t == 0:
            average = [w.astype(np.float64) for w in weights]
        else:
            average = [
                a + (1 - decay) * (w - a) for a, w in zip(average, weights)
            ]
        decays.append(decay)
        t += 1
    for spe in spe_values():
        model = _model(spe)
        history = model.fit(
            x,
            y,
            batch_size=B,
            epochs=3,
            shuffle=False,
            verbose=0,
            callbacks=[
                C.WeightEMA(
                    decay=cap,
                    use_warmup=True,
                    warmup_gamma=gamma,
                    warmup_power=power,
                    min_decay=floor,
                    every_n_steps=n,
                )
            ],
        ).history
        _close(model.get_weights(), average, rtol=1e-5, atol=1e-6)
        # 8 updates per epoch: the last EMA updates are at 6, 15 and 24.
        last = [decays[1], decays[4], decays[7]]
        np.testing.assert_allclose(history["ema_decay"], last, rtol=1e-6)


def test_ema_counts_real_updates_under_gradient_accumulation():
    """Keras's `gradient_accumulation_steps=2`: a step that only
    accumulates is not an EMA update."""
    x, y = _data()

    def optimizer():
        return keras.optimizers.SGD(0.05, gradient_accumulation_steps=2)

    reference = _Trajectory()
    _model(optimizer=optimizer()).fit(
        x,
        y,
        batch_size=B,
        epochs=2,
        shuffle=False,
        verbose=0,
        callbacks=[reference],
    )
    updates = reference.steps[1::2]  # the weights after each real update
    expected = _torch_average(updates, swa_utils.get_ema_multi_avg_fn(0.6))
    for spe in spe_values():
        model = _model(spe, optimizer())
        model.fit(
            x,
            y,
            batch_size=B,
            epochs=2,
            shuffle=False,
            verbose=0,
            callbacks=[C.WeightEMA(decay=0.6)],
        )
        _close(model.get_weights(), expected)


def test_ema_decay_is_a_driver_target():
    x, y = _data()
    reference = _Trajectory()
    _model().fit(
        x,
        y,
        batch_size=B,
        epochs=2,
        shuffle=False,
        verbose=0,
        callbacks=[reference],
    )
    schedule = S.Linear(0.5, 0.9, 16)
    average = None
    for i, weights in enumerate(reference.steps):
        d = float(schedule.evaluate(np.int64(i)))
        average = (
            [w.astype(np.float64) for w in weights]
            if average is None
            else [a + (1 - d) * (w - a) for a, w in zip(average, weights)]
        )
    for callbacks in (
        [
            C.WeightEMA(decay=0.99),
            C.HyperparameterScheduler({"ema_decay": schedule}),
        ],
        [C.HyperparameterScheduler({"ema_decay": schedule}), C.WeightEMA()],
        [C.WeightEMA(decay=schedule)],
    ):
        model = _model(spe_values()[-1])
        history = model.fit(
            x,
            y,
            batch_size=B,
            epochs=2,
            shuffle=False,
            verbose=0,
            callbacks=callbacks,
        ).history
        _close(model.get_weights(), average, rtol=1e-5, atol=1e-6)
        expected = [float(schedule.evaluate(np.int64(i))) for i in (7, 15)]
        np.testing.assert_allclose(history["ema_decay"], expected, rtol=1e-6)
    with pytest.raises(ValueError, match="WeightEMA"):
        _model().fit(
            x,
            y,
            batch_size=B,
            epochs=1,
            verbose=0,
            callbacks=[C.HyperparameterScheduler({"ema_decay": 0.9})],
        )
    with pytest.raises(ValueError, match="Two writers"):
        _model().fit(
            x,
            y,
            batch_size=B,
            epochs=1,
            verbose=0,
            callbacks=[
                C.WeightEMA(decay=schedule),
                C.HyperparameterScheduler({"ema_decay": 0.9}),
            ],
        )


def test_validation_runs_on_the_averages_and_restores_raw_weights():
    x, y = _data()
    xv, yv = _data(32, seed=1)
    seen = []

    class Check(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            self.raw = [np.array(w.numpy()) for w in self.model.weights]

        def on_epoch_end(self, epoch, logs=None):
            after = [np.array(w.numpy()) for w in self.model.weights]
            for a, r in zip(after, self.raw):
                np.testing.assert_array_equal(a, r)  # bit for bit
            seen.append(logs["val_loss"])

    model = _model()
    trajectory = _Trajectory()
    model.fit(
        x,
        y,
        batch_size=B,
        epochs=3,
        shuffle=False,
        verbose=0,
        validation_data=(xv, yv),
        callbacks=[
            C.WeightEMA(decay=0.8, apply_at_end=False),
            trajectory,
            Check(),
        ],
    )
    fn = swa_utils.get_ema_multi_avg_fn(0.8)
    for epoch in range(3):
        average = _torch_average(trajectory.steps[: 8 * (epoch + 1)], fn)
        probe = _model()
        probe.set_weights(average)
        expected = probe.evaluate(xv, yv, batch_size=B, verbose=0)
        assert seen[epoch] == pytest.approx(expected, rel=1e-5)
    _close(model.get_weights(), trajectory.steps[-1], rtol=0, atol=0)


def test_keras_use_ema_is_an_error_and_two_averages_conflict():
    x, y = _data()
    model = _model(optimizer=keras.optimizers.SGD(0.1, use_ema=True))
    for callback in (C.WeightEMA(), C.StochasticWeightAveraging()):
        with pytest.raises(ValueError, match="use_ema"):
            model.fit(x, y, epochs=1, verbose=0, callbacks=[callback])
    for pair in (
        [C.WeightEMA(), C.WeightEMA(decay=0.9)],
        [C.WeightEMA(), C.StochasticWeightAveraging()],
    ):
        model = _model()
        with pytest.raises(ValueError, match="Two"):
            model.fit(x, y, epochs=1, verbose=0, callbacks=pair)
        _stock(model)
    model = _model()  # no conflict: only one writes the final weights
    model.fit(
        x,
        y,
        epochs=1,
        verbose=0,
        callbacks=[
            C.WeightEMA(apply_at_end=False),
            C.StochasticWeightAveraging(swa_epoch_start=0),
        ],
    )
    _stock(model)


def test_exception_during_validation_leaves_the_raw_model():
    x, y = _data()

    class Boom(keras.callbacks.Callback):
        def on_test_batch_end(self, batch, logs=None):
            self.raw_seen = True
            raise RuntimeError("boom")

    model = _model()
    trajectory = _Trajectory()
    with pytest.raises(RuntimeError, match="boom"):
        model.fit(
            x,
            y,
            batch_size=B,
            epochs=2,
            shuffle=False,
            verbose=0,
            validation_data=(x, y),
            callbacks=[C.WeightEMA(decay=0.5), trajectory, Boom()],
        )
    _close(model.get_weights(), trajectory.steps[-1], rtol=0, atol=0)
    _stock(model)
    model.fit(x, y, batch_size=B, epochs=1, verbose=0)  # a stock fit again


def test_keras_file_written_during_training_loads_as_a_plain_model(tmp_path):
    x, y = _data()
    path = str(tmp_path / "model.keras")
    model = _model()
    model.fit(
        x,
        y,
        batch_size=B,
        epochs=2,
        verbose=0,
        callbacks=[
            C.WeightEMA(decay=0.9),
            keras.callbacks.ModelCheckpoint(path),
        ],
    )
    loaded = keras.saving.load_model(path)
    stock = _model()
    stock.optimizer.build(stock.trainable_variables)
    assert len(loaded.optimizer.variables) == len(stock.optimizer.variables)
    loaded.fit(x, y, batch_size=B, epochs=1, verbose=0)


@pytest.mark.parametrize("kind", ["ema", "ema_every_2", "swa"])
def test_interrupted_run_resumes_the_average_exactly(tmp_path, kind):
    x, y = _data()

    def callbacks():
        if kind == "ema":
            return [C.WeightEMA(decay=0.7, use_warmup=True)]
        if kind == "ema_every_2":  # the step compares with the update count
            return [C.WeightEMA(decay=0.7, every_n_steps=2)]
        return [
            C.StochasticWeightAveraging(
                swa_lrs=0.01,
                swa_epoch_start=1,
                annealing_epochs=2,
                update_bn=False,
            )
        ]

    reference = _model()
    expected = reference.fit(
        x,
        y,
        batch_size=B,
        epochs=4,
        shuffle=False,
        verbose=0,
        callbacks=callbacks(),
    ).history

    class Stop(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise RuntimeError("stop")

    backup = str(tmp_path / "backup")
    model = _model()
    with pytest.raises(RuntimeError, match="stop"):
        model.fit(
            x,
            y,
            batch_size=B,
            epochs=4,
            shuffle=False,
            verbose=0,
            callbacks=[
                keras.callbacks.BackupAndRestore(backup),
                *callbacks(),
                Stop(),
            ],
        )
    _stock(model)
    resumed = _model()
    history = resumed.fit(
        x,
        y,
        batch_size=B,
        epochs=4,
        shuffle=False,
        verbose=0,
        callbacks=[*callbacks(), keras.callbacks.BackupAndRestore(backup)],
    ).history
    _close(resumed.get_weights(), reference.get_weights(), rtol=1e-6)
    key = "swa_n_models" if kind == "swa" else "ema_decay"
    assert history[key] == pytest.approx(expected[key][2:])


def test_config_round_trip_and_deepcopy():
    for callback in (
        C.WeightEMA(decay=0.99, use_warmup=True, every_n_steps=2),
        C.WeightEMA(decay=S.Linear(0.9, 0.99, 100)),
        C.StochasticWeightAveraging(0.01, 0.5, 3, "linear", False),
    ):
        again = type(callback).from_config(callback.get_config())
        assert str(again.get_config()) == str(callback.get_config())
        twin = copy.deepcopy(callback)
        assert str(twin.get_config()) == str(callback.get_config())
    x, y = _data()
    callback = C.WeightEMA(decay=0.9)
    twin = copy.deepcopy(callback)
    for cb in (callback, twin, callback):  # reusable, state reset per fit
        model = _model()
        model.fit(x, y, batch_size=B, epochs=1, verbose=0, callbacks=[cb])
        _stock(model)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"decay": 1.5}, "decay"),
        ({"decay": "0.9"}, "decay"),
        ({"decay": -0.1}, "decay"),
        ({"use_warmup": 1}, "use_warmup"),
        ({"warmup_gamma": 0}, "warmup_gamma"),
        ({"warmup_power": -1.0}, "warmup_power"),
        ({"min_decay": 1.0}, "min_decay"),
        ({"every_n_steps": 0}, "every_n_steps"),
        ({"every_n_steps": 1.5}, "every_n_steps"),
        ({"evaluate_with_ema": "yes"}, "evaluate_with_ema"),
        ({"apply_at_end": None}, "apply_at_end"),
        ({"decay": S.BaseValue() * S.Linear(1.0, 0.5, 10)}, "decay"),
        ({"decay": 0.5, "min_decay": 0.6}, "min_decay"),
    ],
)
def test_weight_ema_rejects_bad_arguments(kwargs, name):
    with pytest.raises((ValueError, TypeError), match=name):
        C.WeightEMA(**kwargs)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"swa_lrs": 0.0}, "swa_lrs"),
        ({"swa_lrs": "0.1"}, "swa_lrs"),
        ({"swa_epoch_start": 1.5}, "swa_epoch_start"),
        ({"swa_epoch_start": -1}, "swa_epoch_start"),
        ({"swa_epoch_start": True}, "swa_epoch_start"),
        ({"swa_epoch_start": 0.0}, "swa_epoch_start"),
        ({"swa_epoch_start": 1.0}, "swa_epoch_start"),
        ({"annealing_epochs": -1}, "annealing_epochs"),
        ({"annealing_epochs": 2.5}, "annealing_epochs"),
        ({"annealing_strategy": "exp"}, "annealing_strategy"),
        ({"update_bn": 0}, "update_bn"),
    ],
)
def test_swa_rejects_bad_arguments(kwargs, name):
    with pytest.raises((ValueError, TypeError), match=name):
        C.StochasticWeightAveraging(**kwargs)


# -- StochasticWeightAveraging -----------------------------------------------


def test_swa_average_equals_torch_averaged_model():
    x, y = _data()
    for start, epochs, first in ((2, 5, 2), (0.5, 6, 3), (0, 3, 0)):
        model = _model()
        trajectory = _Trajectory()
        history = model.fit(
            x,
            y,
            batch_size=B,
            epochs=epochs,
            shuffle=False,
            verbose=0,
            callbacks=[
                C.StochasticWeightAveraging(
                    swa_epoch_start=start, update_bn=False
                ),
                trajectory,
            ],
        ).history
        expected = _torch_average(trajectory.epochs[first:])
        _close(model.get_weights(), expected)
        n = [max(0, e - first + 1) for e in range(epochs)]
        assert history["swa_n_models"] == n
        assert "learning_rate" not in history  # swa_lrs=None: LR untouched
        _stock(model)


@pytest.mark.parametrize("strategy", ["cos", "linear"])
def test_swa_learning_rate_equals_torch_swalr_per_update(strategy):
    n, epochs, start, anneal = 48, 6, 2, 2
    steps = n // epochs
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=0.5)
    expected = [0.5] * (start * steps)
    swalr = swa_utils.SWALR(
        opt, swa_lr=0.05, anneal_epochs=anneal * steps, anneal_strategy=strategy
    )
    for _ in range(n - start * steps):
        expected.append(opt.param_groups[0]["lr"])
        opt.step()
        swalr.step()
    for spe in spe_values():
        model = probe_model(n, keras.optimizers.SGD(0.5), spe)
        trajectory = _Trajectory()
        fit_probe(
            model,
            n,
            [
                C.StochasticWeightAveraging(
                    swa_lrs=0.05,
                    swa_epoch_start=start,
                    annealing_epochs=anneal,
                    annealing_strategy=strategy,
                    update_bn=False,
                ),
                trajectory,
            ],
            epochs=epochs,
        )
        # The probe's weight i is -(the LR of update i).
        applied = -trajectory.epochs[-1][0][:, 0].astype(np.float64)
        np.testing.assert_allclose(applied, expected, rtol=1e-6)
        # The model holds the mean of the epoch ends s..last.
        ends = np.mean([e[0] for e in trajectory.epochs[start:]], axis=0)
        np.testing.assert_allclose(-sgd_applied_lrs(model), ends[:, 0], 1e-6)


def test_swa_recomputes_batch_norm_statistics():
    x, y = _data(60)
    model = _model()
    model.fit(
        x,
        y,
        batch_size=16,
        epochs=3,
        verbose=0,
        shuffle=False,
        callbacks=[C.StochasticWeightAveraging(swa_epoch_start=1)],
    )
    dense, bn = model.layers[0], model.layers[1]
    h = np.tanh(x @ dense.kernel.numpy() + dense.bias.numpy())
    batches = [h[i : i + 16] for i in range(0, 60, 16)]
    mean = np.mean([b.mean(0) for b in batches], axis=0)
    var = np.mean([b.var(0) for b in batches], axis=0)
    np.testing.assert_allclose(bn.moving_mean.numpy(), mean, rtol=1e-5)
    np.testing.assert_allclose(bn.moving_variance.numpy(), var, rtol=1e-5)
    assert bn.momentum == 0.99
    _stock(model)


def test_swa_lrs_is_one_writer_of_the_learning_rate():
    x, y = _data()
    with pytest.raises(ValueError, match="Two writers"):
        _model().fit(
            x,
            y,
            batch_size=B,
            epochs=2,
            verbose=0,
            callbacks=[
                C.StochasticWeightAveraging(swa_lrs=0.01, swa_epoch_start=1),
                C.OneCycleLR(max_lr=0.1),
            ],
        )
    # A base writer composes: before epoch s the LR is the base it wrote.
    model = probe_model(8, keras.optimizers.SGD(0.5))
    trajectory = _Trajectory()
    fit_probe(
        model,
        8,
        [
            C.PerEpochLR({0: 0.2}),
            C.StochasticWeightAveraging(
                swa_lrs=0.1,
                swa_epoch_start=1,
                annealing_epochs=0,
                update_bn=False,
            ),
            trajectory,
        ],
        epochs=2,
    )
    applied = -trajectory.epochs[-1][0][:, 0]
    np.testing.assert_allclose(applied, [0.2] * 4 + [0.1] * 4, rtol=1e-6)


# -- found by review -----------------------------------------------------------


def _loss_scaled(initial_scale=2.0**15):
    return keras.optimizers.LossScaleOptimizer(
        keras.optimizers.SGD(0.05), initial_scale=initial_scale
    )


def test_loss_scale_optimizer_keeps_the_stock_layout(tmp_path):
    """The averages are hidden from the wrapper's saving too."""
    x, y = _data()
    path = str(tmp_path / "model.keras")
    model = _model(optimizer=_loss_scaled())
    model.fit(
        x,
        y,
        batch_size=B,
        epochs=2,
        verbose=0,
        callbacks=[C.WeightEMA(0.9), keras.callbacks.ModelCheckpoint(path)],
    )
    stock = _model(optimizer=_loss_scaled())
    stock.optimizer.build(stock.trainable_variables)
    assert len(model.optimizer.variables) == len(stock.optimizer.variables)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "Skipping variable loading ..."
        loaded = keras.saving.load_model(path)
    assert len(loaded.optimizer.variables) == len(stock.optimizer.variables)
    _stock(model)


def test_steps_a_loss_scale_optimizer_skips_are_not_ema_updates():
    """A huge initial scale: the first steps have non-finite gradients and
    are skipped (the scale halves); only real updates are averaged."""
    x, y = _data()
    reference, iterations = _Trajectory(), []

    class Count(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            opt = self.model.optimizer.inner_optimizer
            iterations.append(int(keras.ops.convert_to_numpy(opt.iterations)))

    _model(optimizer=_loss_scaled(3e38)).fit(
        x,
        y,
        batch_size=B,
        epochs=2,
        shuffle=False,
        verbose=0,
        callbacks=[reference, Count()],
    )
    updates = [
        w
        for i, w in enumerate(reference.steps)
        if iterations[i] > (iterations[i - 1] if i else 0)
    ]
    assert 0 < len(updates) < len(reference.steps)  # some were skipped
    expected = _torch_average(updates, swa_utils.get_ema_multi_avg_fn(0.7))
    model = _model(optimizer=_loss_scaled(3e38))
    model.fit(
        x,
        y,
        batch_size=B,
        epochs=2,
        shuffle=False,
        verbose=0,
        callbacks=[C.WeightEMA(0.7)],
    )
    _close(model.get_weights(), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", ["ema", "swa"])
def test_error_in_a_later_on_train_begin_leaves_a_stock_model(kind):
    x, y = _data()

    class Fails(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            raise RuntimeError("late")

    callback = C.WeightEMA() if kind == "ema" else C.StochasticWeightAveraging()
    model = _model()
    model.optimizer.build(model.trainable_variables)
    before = len(model.optimizer.variables)
    with pytest.raises(RuntimeError, match="late"):
        model.fit(
            x,
            y,
            batch_size=B,
            epochs=1,
            verbose=0,
            callbacks=[callback, Fails()],
        )
    _stock(model)
    assert len(model.optimizer.variables) == before
    assert "on_train_begin" not in callback.__dict__


def test_early_stopping_restoring_weights_is_a_second_writer():
    x, y = _data()
    for callback in (C.WeightEMA(), C.StochasticWeightAveraging()):
        model = _model()
        stop = keras.callbacks.EarlyStopping(restore_best_weights=True)
        with pytest.raises(ValueError, match="restore_best_weights"):
            model.fit(
                x,
                y,
                epochs=1,
                verbose=0,
                validation_data=(x, y),
                callbacks=[stop, callback],
            )
        _stock(model)
    model = _model()  # the raw best weights, validated on the average
    model.fit(
        x,
        y,
        epochs=2,
        verbose=0,
        validation_data=(x, y),
        callbacks=[
            C.WeightEMA(apply_at_end=False),
            keras.callbacks.EarlyStopping(restore_best_weights=True),
        ],
    )
    _stock(model)


def test_error_in_the_batch_norm_pass_leaves_the_raw_weights():
    x, y = _data()

    class Data(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()
            self.done = False

        def __len__(self):
            return 8

        def __getitem__(self, i):
            if self.done:
                raise RuntimeError("data gone")
            return x[i * B : (i + 1) * B], y[i * B : (i + 1) * B]

    data = Data()

    class Mark(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            self.raw = [np.array(w.numpy()) for w in self.model.weights]

        def on_train_end(self, logs=None):
            data.done = True

    model, mark = _model(), Mark()
    with pytest.raises(RuntimeError, match="data gone"):
        model.fit(
            data,
            epochs=2,
            verbose=0,
            callbacks=[mark, C.StochasticWeightAveraging(swa_epoch_start=0)],
        )
    _close(model.get_weights(), mark.raw, rtol=0, atol=0)
    _stock(model)


def test_swa_anneal_starts_from_the_lr_of_epoch_s_whatever_writes_later():
    """A per-epoch writer of the base lowers the LR during the anneal: the
    anneal still runs from the LR of the first update of epoch s (torch
    SWALR from 0.4)."""
    n, steps = 40, 8
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=0.4)
    expected = [0.4] * steps
    swalr = swa_utils.SWALR(opt, swa_lr=0.05, anneal_epochs=2 * steps)
    for _ in range(n - steps):
        expected.append(opt.param_groups[0]["lr"])
        opt.step()
        swalr.step()
    for spe in spe_values():
        model = probe_model(n, keras.optimizers.SGD(0.5), spe)
        trajectory = _Trajectory()
        fit_probe(
            model,
            n,
            [
                C.PerEpochLR({0: 0.4, 2: 0.1}),
                C.StochasticWeightAveraging(
                    swa_lrs=0.05,
                    swa_epoch_start=1,
                    annealing_epochs=2,
                    update_bn=False,
                ),
                trajectory,
            ],
            epochs=5,
        )
        applied = -trajectory.epochs[-1][0][:, 0].astype(np.float64)
        np.testing.assert_allclose(applied, expected, rtol=1e-6)
