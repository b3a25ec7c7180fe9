"""The driver: per-step exactness in compiled `fit` (TF plain/XLA, JAX,
torch; steps_per_execution 1 and 8), knob-based per-epoch bases, logs,
clean uninstall, checkpoints, deep copies, configs and errors."""

import copy
import warnings

import keras
import numpy as np
import pytest
from helpers import BACKEND
from helpers import fit_probe
from helpers import jit_values
from helpers import kernel
from helpers import probe_model
from helpers import relative_error
from helpers import sgd_applied_lrs
from helpers import spe_values

from keras_trainplus import callbacks as C
from keras_trainplus import schedules as S

N = 48


def host(schedule, n=N, base=None):
    return np.array([schedule.evaluate(i, base=base) for i in range(n)])


@pytest.mark.parametrize("jit", jit_values())
@pytest.mark.parametrize("spe", spe_values())
def test_every_update_uses_its_own_value(spe, jit):
    lr = S.Join(
        [
            S.Geometric(1e-4, 1e-2, 10),
            S.Cosine(1e-2, 1e-5, 30),
            S.Constant(3e-3),
        ],
        [10, 40],
    )
    model = probe_model(N, keras.optimizers.SGD(1.0), spe, jit)
    fit_probe(
        model, N, [C.HyperparameterScheduler({"learning_rate": lr})], epochs=3
    )
    assert relative_error(sgd_applied_lrs(model), host(lr)) < 1e-6


@pytest.mark.parametrize("spe", spe_values())
def test_per_epoch_knob_times_per_step_shape(spe):
    """PerEpoch writes the LR variable (the knob) once per epoch; the warmup
    multiplies it per step inside the compiled step."""
    per_epoch = S.PerEpoch({0: 0.01, 2: 0.005})
    warm = S.Linear(0.1, 1.0, 20)
    model = probe_model(N, keras.optimizers.SGD(0.5), spe)
    fit_probe(
        model,
        N,
        [C.HyperparameterScheduler({"learning_rate": per_epoch * warm})],
        epochs=3,
    )
    base = np.repeat([0.01, 0.01, 0.005], N // 3)
    expected = base * host(warm)
    assert relative_error(sgd_applied_lrs(model), expected) < 1e-6


class _HalveEveryEpoch(keras.callbacks.Callback):
    """Stands in for an epoch-level controller (newbob, ReduceLROnPlateau):
    it only ever writes the optimizer's learning rate."""

    def on_epoch_begin(self, epoch, logs=None):
        if epoch:
            opt = self.model.optimizer
            opt.learning_rate = float(opt._learning_rate.numpy()) / 2


@pytest.mark.parametrize("spe", spe_values())
def test_base_value_follows_another_controller(spe):
    warm = S.Linear(0.0, 1.0, 8)
    model = probe_model(N, keras.optimizers.SGD(0.02), spe)
    fit_probe(
        model,
        N,
        [
            _HalveEveryEpoch(),
            C.HyperparameterScheduler({"learning_rate": S.BaseValue() * warm}),
        ],
        epochs=3,
    )
    base = np.repeat([0.02, 0.01, 0.005], N // 3)
    assert (
        relative_error(sgd_applied_lrs(model)[1:], (base * host(warm))[1:])
        < 1e-6
    )


def test_logs_history_and_csv_logger(tmp_path):
    lr = S.Linear(0.1, 0.0, N)
    csv = tmp_path / "log.csv"
    model = probe_model(N, keras.optimizers.SGD(0.5))
    history = fit_probe(
        model,
        N,
        [
            C.HyperparameterScheduler({"learning_rate": lr}),
            keras.callbacks.CSVLogger(str(csv)),
        ],
        epochs=4,
    )
    logged = history.history["learning_rate"]
    expected = [lr((e + 1) * N // 4 - 1) for e in range(4)]
    assert logged == pytest.approx(expected, rel=1e-12)
    assert all(type(x) is float for x in logged)
    lines = csv.read_text().splitlines()
    assert "learning_rate" in lines[0]
    assert len(lines) == 5


def test_after_fit_the_optimizer_is_plain_again():
    """The program is removed and the train function rebuilt: a later fit
    without the callback trains at the last scheduled (mirrored) LR."""
    lr = S.Linear(0.2, 0.1, 24)
    model = probe_model(N, keras.optimizers.SGD(0.5))
    opt = model.optimizer
    n_vars = None
    x, y = np.eye(N, dtype="float32"), np.zeros((N, 1), "float32")
    model.fit(
        x[:24],
        y[:24],
        batch_size=1,
        shuffle=False,
        verbose=0,
        callbacks=[C.HyperparameterScheduler({"learning_rate": lr})],
    )
    n_vars = len(opt.variables)
    assert "_get_current_learning_rate" not in opt.__dict__
    assert "update_step" not in opt.__dict__
    assert float(opt.learning_rate) == pytest.approx(0.1)
    assert isinstance(opt.get_config()["learning_rate"], float)
    model.fit(x[24:], y[24:], batch_size=1, shuffle=False, verbose=0)
    applied = sgd_applied_lrs(model)
    assert relative_error(applied[:24], host(lr, 24)) < 1e-6
    np.testing.assert_allclose(applied[24:], 0.1, rtol=1e-6)
    assert len(opt.variables) == n_vars


def test_optimizer_variables_and_checkpoints_unchanged(tmp_path):
    """Checkpoints written during fit load into a plain model with all
    optimizer state (no 'Skipping variable loading' warning)."""

    def build():
        m = keras.Sequential(
            [keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dense(1)]
        )
        m.compile(keras.optimizers.Adam(1e-3), loss="mse")
        return m

    x = np.random.RandomState(0).normal(size=(64, 4)).astype("float32")
    y = x.sum(axis=1, keepdims=True)
    model = build()
    path = tmp_path / "ckpt.keras"
    model.fit(
        x,
        y,
        epochs=2,
        verbose=0,
        callbacks=[
            C.OneCycleLR(1e-2),
            keras.callbacks.ModelCheckpoint(str(path)),
        ],
    )
    plain = build()
    plain.fit(x[:8], y[:8], epochs=1, verbose=0)
    assert len(plain.optimizer.variables) == len(model.optimizer.variables)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = keras.saving.load_model(path)
    for a, b in zip(loaded.optimizer.variables, model.optimizer.variables):
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(a),
            keras.ops.convert_to_numpy(b),
            rtol=1e-6,
        )


def test_resume_with_initial_epoch_continues_the_schedule():
    lr = S.Cyclical(0.01, 0.05, 5, 7)
    full = probe_model(N, keras.optimizers.SGD(0.5))
    fit_probe(
        full, N, [C.HyperparameterScheduler({"learning_rate": lr})], epochs=4
    )
    part = probe_model(N, keras.optimizers.SGD(0.5))
    x, y = np.eye(N, dtype="float32"), np.zeros((N, 1), "float32")
    cb = C.HyperparameterScheduler({"learning_rate": lr})
    part.fit(
        x,
        y,
        batch_size=1,
        epochs=2,
        steps_per_epoch=N // 4,
        shuffle=False,
        verbose=0,
        callbacks=[cb],
    )
    part.fit(
        x[N // 2 :],
        y[N // 2 :],
        batch_size=1,
        epochs=4,
        initial_epoch=2,
        steps_per_epoch=N // 4,
        shuffle=False,
        verbose=0,
        callbacks=[cb],
    )
    np.testing.assert_allclose(kernel(part), kernel(full), rtol=1e-6)
    assert relative_error(sgd_applied_lrs(full), host(lr)) < 1e-6


def test_origin_global_uses_optimizer_iterations():
    lr = S.Linear(0.0, 0.1, 100)
    model = probe_model(N, keras.optimizers.SGD(0.5))
    model.optimizer.iterations.assign(50)
    fit_probe(
        model,
        N,
        [C.HyperparameterScheduler({"learning_rate": lr}, origin="global")],
    )
    expected = np.array([lr(50 + i) for i in range(N)])
    assert relative_error(sgd_applied_lrs(model), expected) < 1e-6


def test_loss_scale_optimizer_is_unwrapped():
    lr = S.Linear(0.1, 0.01, N)
    opt = keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(0.5))
    model = probe_model(N, opt)
    fit_probe(model, N, [C.HyperparameterScheduler({"learning_rate": lr})])
    assert relative_error(sgd_applied_lrs(model), host(lr)) < 1e-6


def test_deepcopy_drops_model_and_runtime_state():
    cb = C.CyclicLR(0.001, 0.01, step_size_up=4, cycle_momentum=False)
    model = probe_model(N, keras.optimizers.SGD(0.5))
    fit_probe(model, N, [cb])
    clone = copy.deepcopy(cb)
    assert clone._model is None and not clone._installed
    assert clone.get_config() == cb.get_config()
    other = probe_model(N, keras.optimizers.SGD(0.5))
    fit_probe(other, N, [clone])
    np.testing.assert_allclose(kernel(other), kernel(model), rtol=1e-6)


def test_reused_instance_resets_state_between_fits():
    cb = C.HyperparameterScheduler({"learning_rate": S.Linear(0.1, 0.0, N)})
    a = probe_model(N, keras.optimizers.SGD(0.5))
    b = probe_model(N, keras.optimizers.SGD(0.5))
    fit_probe(a, N, [cb])
    fit_probe(b, N, [cb])
    np.testing.assert_allclose(kernel(a), kernel(b), rtol=1e-7)


CALLBACKS = [
    lambda: C.HyperparameterScheduler(
        {
            "learning_rate": S.PerEpoch([1.0, 0.5]) * S.Linear(0.0, 1.0, 5),
            "momentum": S.Constant(0.9),
        },
        origin="global",
        verbose=1,
    ),
    lambda: C.CyclicLR(0.001, 0.006, 10, 20, "exp_range", 0.99),
    lambda: C.CyclicLR(
        0.001,
        0.006,
        scale_fn=S.ExponentialDecay(1, 0.5, 1),
        scale_mode="iterations",
    ),
    lambda: C.OneCycleLR(0.1, total_steps=100, three_phase=True),
    lambda: C.OneCycleLR(0.1, epochs=3, steps_per_epoch=7),
    lambda: C.OneCycleLR(0.1),
    lambda: C.WarmupDecayLR(1e-3, 0.1, "cosine"),
    lambda: C.WarmupDecayLR.transformer(512, 4000),
    lambda: C.PerEpochLR({0: 1e-3, 5: 1e-4}, step_shape=S.Linear(0, 1, 9)),
    lambda: C.PerEpochLR([1e-3, 2e-3]),
]


@pytest.mark.parametrize("i", range(len(CALLBACKS)))
def test_callback_config_round_trip(i):
    cb = CALLBACKS[i]()
    cfg = cb.get_config()
    assert "lambda" not in repr(cfg)
    back = type(cb).from_config(cfg)
    assert back.get_config() == cfg
    ser = keras.saving.serialize_keras_object(cb)
    again = keras.saving.deserialize_keras_object(ser)
    assert type(again) is type(cb) and again.get_config() == cfg


def test_verbose_prints_values(capsys):
    model = probe_model(N, keras.optimizers.SGD(0.5))
    fit_probe(
        model,
        N,
        [
            C.HyperparameterScheduler(
                {"learning_rate": S.Constant(0.25)}, verbose=1
            )
        ],
        epochs=2,
    )
    out = capsys.readouterr().out
    assert "Epoch 2: HyperparameterScheduler learning_rate=0.25" in out


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: C.HyperparameterScheduler({}), "non-empty dict"),
        (lambda: C.HyperparameterScheduler({"learning_rat": 0.1}), "Unknown"),
        (
            lambda: C.HyperparameterScheduler({"learning_rate": "x"}),
            "schedules",
        ),
        (
            lambda: C.HyperparameterScheduler(
                {"learning_rate": S.PerEpoch([1.0]) * S.PerEpoch([2.0])}
            ),
            "several `PerEpoch`",
        ),
        (
            lambda: C.HyperparameterScheduler({"lr": 0.1}, origin="start"),
            "origin",
        ),
        (lambda: C.CyclicLR(0.01, 0.001), "max_lr"),
        (lambda: C.CyclicLR(0.001, 0.01, step_size_up=0), "step_size_up"),
        (lambda: C.CyclicLR(0.001, 0.01, step_size_down=-3), "step_size_down"),
        (lambda: C.CyclicLR(0.001, 0.01, base_momentum=0.95), "max_momentum"),
        (lambda: C.CyclicLR(0.001, 0.01, max_momentum=1.5), "max_momentum"),
        (lambda: C.OneCycleLR(0.1, pct_start=1.2), "pct_start"),
        (lambda: C.OneCycleLR(0.1, pct_start=0), "pct_start"),
        (lambda: C.OneCycleLR(-0.1), "max_lr"),
        (lambda: C.OneCycleLR(0.1, epochs=3), "steps_per_epoch"),
        (lambda: C.OneCycleLR(0.1, total_steps=1), "total_steps"),
        (
            lambda: C.OneCycleLR(0.1, total_steps=5, pct_start=0.1),
            "empty phase",
        ),
        (lambda: C.WarmupDecayLR(0.0), "peak_lr"),
        (lambda: C.WarmupDecayLR(1e-3, decay="poly"), "decay"),
        (lambda: C.WarmupDecayLR(1e-3, warmup="exponential"), "initial_lr"),
        (lambda: C.WarmupDecayLR(1e-3, decay="step"), "decay_steps"),
        (lambda: C.WarmupDecayLR(1e-3, warmup_steps=-1), "warmup_steps"),
        (lambda: C.PerEpochLR([]), "learning_rates"),
    ],
)
def test_construction_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_momentum_errors_explain_what_to_do():
    model = probe_model(N, keras.optimizers.SGD(0.1))
    with pytest.raises(ValueError, match=r"SGD\(momentum=0.9\)"):
        fit_probe(model, N, [C.CyclicLR(0.001, 0.01)])
    model = probe_model(N, keras.optimizers.RMSprop(0.1, momentum=0.5))
    with pytest.raises(ValueError, match="cycle_momentum=False"):
        fit_probe(model, N, [C.OneCycleLR(0.01)])


def test_optimizer_with_its_own_schedule_is_refused():
    opt = keras.optimizers.SGD(S.Linear(0.1, 0.0, 10))
    model = probe_model(N, opt)
    with pytest.raises(ValueError, match="learning-rate schedule"):
        fit_probe(model, N, [C.WarmupDecayLR(1e-3, 5)])


def test_one_cycle_longer_fit_than_total_steps_fails_early():
    model = probe_model(N, keras.optimizers.SGD(0.1, momentum=0.9))
    with pytest.raises(ValueError, match="total_steps=20"):
        fit_probe(model, N, [C.OneCycleLR(0.01, total_steps=20)])
    assert not np.any(kernel(model))


@pytest.mark.skipif(BACKEND == "torch", reason="torch needs spe=1")
def test_partial_last_execution_block():
    """13 steps per epoch with steps_per_execution=8: blocks of 8 and 5,
    where Keras passes batch indices past the end; the in-graph step is
    still exact."""
    n = 13
    lr = S.Linear(0.1, 0.01, 2 * n)
    model = probe_model(n, keras.optimizers.SGD(0.5), steps_per_execution=8)
    x, y = np.eye(n, dtype="float32"), np.zeros((n, 1), "float32")
    history = model.fit(
        x,
        y,
        batch_size=1,
        epochs=2,
        shuffle=False,
        verbose=0,
        callbacks=[C.HyperparameterScheduler({"learning_rate": lr})],
    )
    lrs = host(lr, 2 * n)
    expected = lrs[:n] + lrs[n:]
    np.testing.assert_allclose(sgd_applied_lrs(model), expected, rtol=1e-6)
    assert history.history["learning_rate"] == pytest.approx(
        [lrs[n - 1], lrs[2 * n - 1]]
    )


@pytest.mark.parametrize("spe", spe_values())
@pytest.mark.parametrize("scale_mode", ["cycle", "iterations"])
def test_python_lambda_scale_fn_in_compiled_fit(scale_mode, spe):
    """A torch-style scale function written with `math` (which cannot run on
    symbolic tensors) still gives the exact per-update values: it is
    tabulated on the host for the steps `fit` will run."""
    import math

    def fn(x):
        return (
            0.5 * (1 + math.sin(x * math.pi / 2))
            if scale_mode == "cycle"
            else math.exp(-0.01 * x) * (1 + 0.1 * math.cos(x))
        )

    cb = C.CyclicLR(
        0.001,
        0.01,
        step_size_up=3,
        step_size_down=5,
        scale_fn=lambda x: fn(x),
        scale_mode=scale_mode,
        cycle_momentum=False,
    )
    model = probe_model(N, keras.optimizers.SGD(0.5), spe)
    fit_probe(model, N, [cb], epochs=2)
    expected = []
    for i in range(N):
        cycle = math.floor(1 + i / 8)
        x = 1 + i / 8 - cycle
        h = x / (3 / 8) if x <= 3 / 8 else (x - 1) / (3 / 8 - 1)
        arg = cycle if scale_mode == "cycle" else i
        expected.append(0.001 + 0.009 * h * fn(arg))
    assert relative_error(sgd_applied_lrs(model), expected) < 1e-6


# -- public options, Knob targets, schedules from the fit's length ---------


class _KnobLR(keras.optimizers.schedules.LearningRateSchedule):
    """User code that reads a knob inside the compiled step."""

    def __init__(self, knob):
        self.knob = knob

    def __call__(self, step):
        return self.knob.read()


@pytest.mark.parametrize("spe", spe_values())
def test_any_knob_is_a_target_per_step_and_per_epoch(spe):
    from keras_trainplus import Knob

    knob = Knob(0.5, name="my_knob")  # not tracked: the driver carries it
    shape = S.Linear(0.1, 1.0, N)
    model = probe_model(N, keras.optimizers.SGD(_KnobLR(knob)), spe)
    history = fit_probe(model, N, [C.HyperparameterScheduler({knob: shape})])
    assert relative_error(sgd_applied_lrs(model), host(shape)) < 1e-6
    assert history.history["my_knob"][-1] == pytest.approx(
        float(shape.evaluate(N - 1)), rel=1e-6
    )
    assert knob._program is None  # uninstalled: a plain variable again
    per_epoch = S.PerEpoch([0.1, 0.2, 0.3])
    model = probe_model(N, keras.optimizers.SGD(_KnobLR(knob)), spe)
    fit_probe(
        model,
        N,
        [C.HyperparameterScheduler({knob: per_epoch})],
        epochs=3,
    )
    expected = np.repeat([0.1, 0.2, 0.3], N // 3)
    assert relative_error(sgd_applied_lrs(model), expected) < 1e-6


def test_knob_target_is_shared_by_deep_copies_and_round_trips():
    from keras_trainplus import Knob

    knob = Knob(0.25, name="k")
    driver = C.HyperparameterScheduler(
        {knob: S.Linear(0.0, 1.0, 10)}, options={knob: {"log_key": "k2"}}
    )
    assert next(iter(copy.deepcopy(driver).schedules)) is knob
    restored = C.HyperparameterScheduler.from_config(driver.get_config())
    (target,) = restored.schedules
    assert isinstance(target, Knob) and float(target) == 0.25
    assert restored.options == {target: {"log_key": "k2"}}


def test_options_reach_the_targets_in_fit():
    """`mode` of gradient_clip (and `layers` of dropout, below) are public
    options of the driver; the presets use them too."""
    x = np.zeros((1, N), "float32")
    x[0, :2] = [1.0, 3.0]  # gradient (1, 3, 0, ...)
    for mode, expected in [("value", [0.25, 0.25]), ("global_norm", None)]:
        model = probe_model(N, keras.optimizers.SGD(1.0))
        driver = C.HyperparameterScheduler(
            {"gradient_clip": 0.25}, options={"gradient_clip": {"mode": mode}}
        )
        model.fit(x, x[:, :1], epochs=1, verbose=0, callbacks=[driver])
        if expected is None:  # the norm of (1, 3) scaled to 0.25
            expected = np.array([1.0, 3.0]) * 0.25 / np.sqrt(10.0)
        np.testing.assert_allclose(-kernel(model)[:2], expected, rtol=1e-5)


def test_dropout_layers_option_schedules_only_those_layers():
    inputs = keras.Input((4,))
    a = keras.layers.Dropout(0.5, name="a")(inputs)
    b = keras.layers.Dropout(0.5, name="b")(a)
    model = keras.Model(inputs, keras.layers.Dense(1)(b))
    model.compile("sgd", "mse")
    driver = C.HyperparameterScheduler(
        {"dropout": 0.1}, options={"dropout": {"layers": ["a"]}}
    )
    x = np.ones((8, 4), "float32")
    history = model.fit(x, x[:, :1], epochs=1, verbose=0, callbacks=[driver])
    assert history.history["dropout_rate"] == [pytest.approx(0.1)]
    assert model.get_layer("a").rate == pytest.approx(0.1)
    assert model.get_layer("b").rate == 0.5


def test_schedules_from_the_fit_length():
    model = probe_model(N, keras.optimizers.SGD(1.0))
    driver = C.HyperparameterScheduler(
        lambda updates: {"learning_rate": S.Linear(1.0, 0.0, updates)}
    )
    fit_probe(model, N, [driver], epochs=2)
    expected = host(S.Linear(1.0, 0.0, N))
    assert relative_error(sgd_applied_lrs(model), expected) < 1e-6


@pytest.mark.parametrize(
    "options,match",
    [
        ({"momentum": {}}, r"options\['momentum'\]"),
        ({"learning_rate": {"mode": "value"}}, r"options\['learning_rate'\]"),
        ({"learning_rate": []}, r"options\['learning_rate'\]"),
        ({"learning_rate": {"log_key": 3}}, r"log_key"),
        ("x", r"options"),
    ],
)
def test_bad_options_are_named(options, match):
    with pytest.raises((ValueError, TypeError), match=match):
        C.HyperparameterScheduler({"learning_rate": 0.1}, options=options)


def test_bad_clip_mode_option_is_named():
    with pytest.raises(ValueError, match=r"options\['gradient_clip'\]"):
        C.HyperparameterScheduler(
            {"gradient_clip": 1.0}, options={"gradient_clip": {"mode": "x"}}
        )
