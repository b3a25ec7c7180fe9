"""NewbobLRControl: RETURNN reference cases through the callback protocol,
real fit, state files (atomic, safe, resumable after SIGKILL), RETURNN file
import, chief-only writes, composition with per-step shapes, options."""

import json
import math
import os
import pathlib
import signal
import subprocess
import sys

import keras
import numpy as np
import pytest
from helpers import DATA
from helpers import SHARED
from helpers import fit_probe
from helpers import probe_model
from helpers import relative_error
from helpers import sgd_applied_lrs

from keras_trainplus import schedules as S
from keras_trainplus.callbacks import NewbobLRControl
from keras_trainplus.callbacks.newbob import _protocol as _newbob
from keras_trainplus.callbacks.newbob import _state_file


def _load_reference():
    files = [DATA / "newbob_public.json"]
    extra = SHARED / "reference"
    if extra.is_dir():
        files += sorted(
            p
            for p in extra.glob("newbob_*.json")
            if p.name != "newbob_public.json"
        )
    cases, meta = {}, None
    for path in files:
        data = json.loads(path.read_text())
        meta = meta or data
        for case in data["cases"]:
            cases.setdefault(case["name"], case)
    return list(cases.values()), meta


CASES, META = _load_reference()


def num(x):
    if x is None:
        return None
    return {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}.get(
        x, x
    )


@pytest.fixture(scope="module")
def model():
    m = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    m.compile(keras.optimizers.SGD(0.1), loss="mse")
    return m


def drive(cb, model, dev, train=None):
    """The Keras callback protocol: LR decided in on_epoch_begin(i), scores
    reported in on_epoch_end(i). Returns (optimizer LRs, logged LRs)."""
    cb.set_model(model)
    cb.on_train_begin()
    opt_lrs, logged = [], []
    for i, score in enumerate(dev):
        cb.on_epoch_begin(i)
        opt_lrs.append(
            float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))
        )
        logs = {}
        if train is not None:
            logs["loss"] = num(train[i])
        if score is not None:
            logs["val_loss"] = num(score)
        cb.on_epoch_end(i, logs)
        logged.append(logs["learning_rate"])
    cb.on_train_end()
    return opt_lrs, logged


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_returnn_reference_case(case, model):
    cb = NewbobLRControl.from_returnn_config(case["config"])
    train = case["train"] if case["feed_train_score"] else None
    opt_lrs, logged = drive(cb, model, case["dev"], train)
    ref = [num(x) for x in case["lrs"]]
    np.testing.assert_allclose(opt_lrs, ref, rtol=1e-6, atol=0)
    np.testing.assert_allclose(logged, ref, rtol=1e-12, atol=0)
    assert all(type(x) is float for x in logged)


def test_error_key_selection_matches_returnn():
    for ex in META["error_key_selection_examples"]:
        got = _newbob.select_error_key(
            ex["errors"], ex["learning_rate_control_error_measure"]
        )
        assert got == ex["selected_key"], ex


def test_degenerate_scores_have_defined_results(model):
    """RETURNN raises ZeroDivisionError (Python floats) or fails an assertion
    (NumPy floats) on a score of exactly 0. Here the relative error follows
    IEEE arithmetic: wherever RETURNN produced LRs, they match."""
    for case in META["degenerate_cases"]:
        cb = NewbobLRControl.from_returnn_config(case["config"])
        dev = [
            np.float64(x) if case["score_type"] == "numpy_float64" else x
            for x in case["dev"]
        ]
        _, logged = drive(cb, model, dev)
        assert all(math.isfinite(x) for x in logged)
        if "lrs" in case:
            np.testing.assert_allclose(logged, case["lrs"], rtol=1e-12)


# ---------------------------------------------------------------------------
# Native constructor


def test_native_constructor_equals_returnn_config(model):
    case = next(c for c in CASES if c["name"] == "plateau_after_8/rel__combo")
    cfg = case["config"]
    native = NewbobLRControl(
        "newbob_rel",
        initial_lr=cfg["learning_rate"],
        learning_rates=cfg["learning_rates"],
        decay=cfg["newbob_learning_rate_decay"],
        min_lr=cfg["min_learning_rate"],
        min_num_epochs_per_new_lr=2,
        relative_error_relative_lr=True,
    )
    _, logged = drive(native, model, case["dev"], case["train"])
    np.testing.assert_allclose(
        logged, [num(x) for x in case["lrs"]], rtol=1e-12
    )


def test_native_dict_epochs_are_zero_based(model):
    cb = NewbobLRControl(
        "constant", initial_lr=1.0, learning_rates={0: 0.1, 3: 0.5}
    )
    _, logged = drive(cb, model, [1.0] * 5)
    assert logged == [0.1, 0.1, 0.1, 0.5, 0.5]


def test_monitor_never_in_logs_is_an_error(model):
    cb = NewbobLRControl(monitor="val_los")
    cb.set_model(model)
    cb.on_train_begin()
    cb.on_epoch_begin(0)
    with pytest.raises(ValueError, match="val_los.*not in the logs"):
        cb.on_epoch_end(0, {"loss": 1.0, "val_loss": 2.0})


def test_monitor_missing_in_one_epoch_holds(model):
    cb = NewbobLRControl("newbob_rel", initial_lr=1.0)
    dev = [1.0, 1.0, None, 1.0, 1.0, 1.0]
    with pytest.warns(UserWarning, match="missing in epoch 2"):
        _, logged = drive(cb, model, dev)
    # Decay needs two epochs with scores in a row: epochs 3 and 4 hold.
    assert logged == [1.0, 1.0, 0.5, 0.5, 0.5, 0.25]


def test_max_mode_and_numpy_scalars(model):
    cb = NewbobLRControl(
        "newbob_abs", monitor="val_accuracy", initial_lr=np.float32(1.0)
    )
    cb.set_model(model)
    cb.on_train_begin()
    lrs = []
    for i, acc in enumerate([0.5, 0.6, 0.6, 0.7]):
        cb.on_epoch_begin(i)
        logs = {"val_accuracy": np.float64(acc)}
        cb.on_epoch_end(i, logs)
        lrs.append(logs["learning_rate"])
    # Accuracy rose by 0.1 (better): keep; then flat (not better): decay.
    assert lrs == [1.0, 1.0, 1.0, 0.5]


def test_grow_threshold_above_decay_threshold_decays_with_warning(model):
    cb = NewbobLRControl(
        "newbob_multi_epoch",
        initial_lr=1.0,
        multi_num_epochs=1,
        multi_update_interval=1,
        relative_error_threshold=-0.01,
        relative_error_grow_threshold=0.5,
        growth=2.0,
    )
    with pytest.warns(UserWarning, match="decaying"):
        _, logged = drive(cb, model, [1.0, 1.0, 1.0])
    assert logged == [1.0, 1.0, 0.5]


def test_callable_decay_must_be_registered_to_serialize():
    cb = NewbobLRControl(decay=lambda lr: lr * 0.3)
    with pytest.raises(ValueError, match="decay"):
        cb.get_config()


@keras.saving.register_keras_serializable(package="tests")
def third(lr):
    return lr / 3.0


@pytest.mark.parametrize(
    "make",
    [
        lambda: NewbobLRControl(
            "newbob_multi_epoch",
            learning_rates={0: 1e-4, 5: 1e-3},
            decay=third,
            state_file="x.json",
            step_shape=S.Linear(0.0, 1.0, 10),
        ),
        lambda: NewbobLRControl("constant", learning_rates=[1e-4, 2e-4]),
        lambda: NewbobLRControl.from_returnn_config(
            {
                "learning_rate": 1e-3,
                "learning_rate_control": "newbob",
                "learning_rates": {"1": 1e-4, "16": 8e-4},
                "learning_rate_control_error_measure": "dev_score",
            },
            restore_best_weights=True,
        ),
    ],
)
def test_config_round_trip(make, model):
    cb = make()
    cfg = cb.get_config()
    back = NewbobLRControl.from_config(json.loads(json.dumps(cfg)))
    assert back.get_config() == cfg
    assert back.learning_rates == cb.learning_rates
    ser = keras.saving.serialize_keras_object(cb)
    again = keras.saving.deserialize_keras_object(ser)
    assert again.get_config() == cfg


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(control="newbob_fast"), "control"),
        (dict(monitor=""), "monitor"),
        (dict(mode="up"), "mode"),
        (dict(decay=0.0), "decay"),
        (dict(decay="half"), "decay"),
        (dict(growth=-1.0), "growth"),
        (
            dict(relative_error_threshold=float("nan")),
            "relative_error_threshold",
        ),
        (dict(multi_num_epochs=0), "multi_num_epochs"),
        (dict(multi_update_interval=0), "multi_update_interval"),
        (dict(min_num_epochs_per_new_lr=-1), "min_num_epochs_per_new_lr"),
        (dict(min_lr=-1e-3), "min_lr"),
        (dict(learning_rates=[]), "learning_rates"),
        (dict(learning_rates=[1e-3, -1.0]), "learning_rates"),
        (dict(learning_rates={-1: 1e-3}), "learning_rates"),
        (dict(initial_lr="big"), "initial_lr"),
        (dict(state_file=3), "state_file"),
    ],
)
def test_invalid_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        NewbobLRControl(**kwargs)


def test_returnn_config_errors_and_warnings():
    with pytest.raises(ValueError, match="config"):
        NewbobLRControl.from_returnn_config([("learning_rate", 1.0)])
    with pytest.raises(ValueError, match="keyword"):
        NewbobLRControl.from_returnn_config({}, monitor="loss")
    with pytest.warns(UserWarning, match="newbob_learning_rate_decy"):
        NewbobLRControl.from_returnn_config(
            {"newbob_learning_rate_decy": 0.3, "network": {}}
        )
    # RETURNN evals a string `learning_rates`; here only literals parse.
    cb = NewbobLRControl.from_returnn_config({"learning_rates": "[0.1, 0.2]"})
    assert cb.learning_rates == {1: 0.1, 2: 0.2}
    with pytest.raises(ValueError, match="literal"):
        NewbobLRControl.from_returnn_config(
            {"learning_rates": "__import__('os').getcwd()"}
        )
    # RETURNN rejects an int LR; here it is simply a float.
    assert (
        NewbobLRControl.from_returnn_config({"learning_rate": 1}).initial_lr
        == 1.0
    )
    with pytest.raises(ValueError, match="learning_rate='1'"):
        NewbobLRControl.from_returnn_config({"learning_rate": "1"})


# ---------------------------------------------------------------------------
# Real fit


def test_real_fit_matches_the_protocol():
    keras.utils.set_random_seed(1)
    rng = np.random.RandomState(0)
    x = rng.normal(size=(96, 8)).astype("float32")
    w = rng.normal(size=(8, 1)).astype("float32")
    y = x @ w + 0.3 * rng.normal(size=(96, 1)).astype("float32")
    model = keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(1),
        ]
    )
    model.compile(keras.optimizers.SGD(0.05, momentum=0.9), loss="mse")

    class Used(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.lrs = []

        def on_train_batch_begin(self, batch, logs=None):
            if batch == 0:
                self.lrs.append(
                    float(
                        keras.ops.convert_to_numpy(
                            self.model.optimizer.learning_rate
                        )
                    )
                )

    used = Used()
    cb = NewbobLRControl(
        "newbob_rel", relative_error_threshold=-0.2, learning_rates=[0.01]
    )
    history = model.fit(
        x[:64],
        y[:64],
        validation_data=(x[64:], y[64:]),
        epochs=12,
        batch_size=16,
        verbose=0,
        callbacks=[cb, used],
    )
    logged = history.history["learning_rate"]
    assert len(set(logged)) > 2  # the run exercises decays
    replay = NewbobLRControl(
        "newbob_rel", relative_error_threshold=-0.2, learning_rates=[0.01]
    )
    plain = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    plain.compile(keras.optimizers.SGD(0.05), loss="mse")
    _, expected = drive(replay, plain, history.history["val_loss"])
    assert logged == expected
    np.testing.assert_allclose(used.lrs, expected, rtol=1e-6)


@pytest.mark.parametrize("spe", [1, 4])
def test_newbob_base_times_per_step_warmup(spe):
    if keras.backend.backend() == "torch" and spe > 1:
        pytest.skip("torch needs spe=1")
    n = 48
    warm = S.Linear(0.25, 1.0, 6)
    cb = NewbobLRControl(
        "constant",
        initial_lr=0.02,
        learning_rates={0: 0.02, 1: 0.01, 2: 0.005},
        step_shape=warm,
        monitor="loss",
    )
    model = probe_model(n, keras.optimizers.SGD(0.5), spe)
    history = fit_probe(model, n, [cb], epochs=3)
    base = np.repeat([0.02, 0.01, 0.005], n // 3)
    expected = base * np.array([warm(i) for i in range(n)])
    assert relative_error(sgd_applied_lrs(model), expected) < 1e-6
    assert history.history["learning_rate"] == [0.02, 0.01, 0.005]
    assert history.history["effective_learning_rate"] == pytest.approx(
        expected[[15, 31, 47]]
    )


def test_restore_best_weights_on_decay(model):
    m = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    m.compile(keras.optimizers.SGD(0.1), loss="mse")
    cb = NewbobLRControl(
        "newbob_rel", initial_lr=1.0, restore_best_weights=True
    )
    cb.set_model(m)
    cb.on_train_begin()
    snapshots = {}
    for i, dev in enumerate([3.0, 2.0, 2.5, 2.4]):
        cb.on_epoch_begin(i)
        if i == 3:  # decayed after epoch 2 got worse: best is epoch 1
            for a, b in zip(m.get_weights(), snapshots[1]):
                np.testing.assert_array_equal(a, b)
        m.set_weights([w + 1.0 for w in m.get_weights()])  # "training"
        snapshots[i] = [np.array(w) for w in m.get_weights()]
        cb.on_epoch_end(i, {"val_loss": dev})
    assert cb._epoch_lr == {1: 1.0, 2: 1.0, 3: 1.0, 4: 0.5}


# ---------------------------------------------------------------------------
# State files


def test_state_file_contents_and_resume_in_process(tmp_path, model):
    path = tmp_path / "sub" / "lr.json"
    dev = [2.0, 1.9, 1.95, float("nan"), 1.5, 1.49, 1.489, 1.488]
    full = NewbobLRControl("newbob_rel", initial_lr=1e-3)
    _, expected = drive(full, model, dev)

    first = NewbobLRControl("newbob_rel", initial_lr=1e-3, state_file=str(path))
    _, part = drive(first, model, dev[:5])
    data = json.loads(path.read_text())  # strict JSON (no NaN literal)
    assert data["format"] == "keras_trainplus.newbob"
    assert data["epochs"][3]["scores"]["val_loss"] == "NaN"
    records = NewbobLRControl.read_state_file(str(path))
    assert math.isnan(records[3]["scores"]["val_loss"])
    assert [records[e]["learning_rate"] for e in range(5)] == part

    second = NewbobLRControl(
        "newbob_rel", initial_lr=1e-3, state_file=str(path)
    )
    second.set_model(model)
    second.on_train_begin()
    rest = []
    for i in range(5, 8):
        second.on_epoch_begin(i)
        logs = {"val_loss": dev[i]}
        second.on_epoch_end(i, logs)
        rest.append(logs["learning_rate"])
    assert part + rest == expected
    assert not list(path.parent.glob("*.tmp"))


def test_atomic_write_keeps_the_old_file_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "state.json"
    _state_file.write_atomic(str(path), "old contents\n")

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        _state_file.write_atomic(str(path), "new contents\n")
    assert path.read_text() == "old contents\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


@pytest.mark.parametrize(
    "text,match",
    [
        (
            '{"format": "keras_trainplus.newbob", "version": 1, '
            '"epochs": [{"ep',
            "truncated",
        ),
        ("", "truncated"),
        ('{"format": "other"}', "not a keras_trainplus"),
        (
            '{"format": "keras_trainplus.newbob", "version": 99, "epochs": []}',
            "version",
        ),
        (
            '{"format": "keras_trainplus.newbob", "version": 1, "epochs": '
            '[{"epoch": -1}]}',
            "bad epoch",
        ),
        (
            '{"format": "keras_trainplus.newbob", "version": 1, "epochs": '
            '[{"epoch": 0, "learning_rate": "1e-3"}]}',
            "number",
        ),
        (
            '{"format": "keras_trainplus.newbob", "version": 1, "epochs": '
            '[{"epoch": 0, "learning_rate": NaN}]}',
            "JSON",
        ),
    ],
)
def test_corrupt_state_files_are_clear_errors(tmp_path, model, text, match):
    path = tmp_path / "lr.json"
    path.write_text(text)
    cb = NewbobLRControl(state_file=str(path))
    cb.set_model(model)
    with pytest.raises(ValueError, match=match):
        cb.on_train_begin()


RETURNN_SAMPLE = META["learning_rate_file_sample"]


def test_returnn_learning_rate_file_is_imported_without_eval(tmp_path, model):
    path = tmp_path / "newbob.data"
    path.write_text(RETURNN_SAMPLE)
    records = NewbobLRControl.read_state_file(str(path))
    assert records[0] == {
        "learning_rate": 0.001,
        "predefined": False,
        "scores": {"dev_score": 2.0, "train_score": 2.5},
    }
    assert math.isnan(records[3]["scores"]["dev_score"])
    cb = NewbobLRControl.from_returnn_config(
        {
            "learning_rate": 0.001,
            "learning_rate_control": "newbob_rel",
            "learning_rate_file": str(path),
        }
    )
    cb.set_model(model)
    cb.on_train_begin()
    cb.on_epoch_begin(4)  # RETURNN epoch 5: pair (3 -> 4) has a NaN
    assert cb._epoch_lr[5] == 0.0005
    assert (
        tmp_path / "newbob.data.returnn-backup"
    ).read_text() == RETURNN_SAMPLE
    assert json.loads(path.read_text())["format"] == "keras_trainplus.newbob"


HOSTILE = [
    "{1: EpochData(learningRate=__import__('os').system('touch {marker}'), "
    "error={})}",
    "{1: EpochData(learningRate=0.1, error={'dev_score': "
    "open('{marker}', 'w').write('x')})}",
    "__import__('os').system('touch {marker}')",
    "{1: EpochData(learningRate=float(__import__('os').system("
    "'touch {marker}')), error={})}",
    "{1: (lambda: __import__('os').system('touch {marker}'))()}",
]


@pytest.mark.parametrize("template", HOSTILE)
def test_hostile_state_file_runs_nothing(tmp_path, model, template):
    marker = tmp_path / "pwned"
    path = tmp_path / "newbob.data"
    text = template.replace("{marker}", str(marker))
    path.write_text(text)
    cb = NewbobLRControl.from_returnn_config({"learning_rate_file": str(path)})
    cb.set_model(model)
    with pytest.raises(ValueError):
        cb.on_train_begin()
    assert not marker.exists()
    assert path.read_text() == text  # the file is left untouched


def test_only_the_chief_writes(tmp_path, monkeypatch, model):
    path = tmp_path / "lr.json"
    monkeypatch.setenv(
        "TF_CONFIG",
        json.dumps(
            {
                "cluster": {"worker": ["localhost:1", "localhost:2"]},
                "task": {"type": "worker", "index": 1},
            }
        ),
    )
    drive(
        NewbobLRControl(state_file=str(path), initial_lr=0.1), model, [1.0, 0.9]
    )
    assert not path.exists()
    monkeypatch.setenv(
        "TF_CONFIG",
        json.dumps(
            {
                "cluster": {"worker": ["localhost:1", "localhost:2"]},
                "task": {"type": "worker", "index": 0},
            }
        ),
    )
    drive(
        NewbobLRControl(state_file=str(path), initial_lr=0.1), model, [1.0, 0.9]
    )
    assert path.exists()


def test_existing_records_are_authoritative(tmp_path, model):
    path = tmp_path / "lr.json"
    records = {
        1: {"lr": 0.3, "scores": {"val_loss": 1.0}},
        2: {"lr": 0.2, "scores": {}},
    }
    path.write_text(_state_file.dumps(records))
    cb = NewbobLRControl(
        state_file=str(path), learning_rates=[0.9, 0.8], initial_lr=1.0
    )
    _, logged = drive(cb, model, [1.0, 1.0, 1.0])
    assert logged[:2] == [0.3, 0.2]


# ---------------------------------------------------------------------------
# Resume after SIGKILL, in real subprocesses


WORKER = pathlib.Path(__file__).with_name("_newbob_worker.py")


def _worker(tmp_path, name, epochs, initial, kill, backup="-"):
    env = dict(os.environ)
    out = tmp_path / f"{name}.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(WORKER),
            str(tmp_path / f"{name}.state"),
            str(out),
            str(epochs),
            str(initial),
            str(kill),
            backup,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    return proc, out


def _lrs(out):
    return [lr for _, lr in json.loads(out.read_text())]


@pytest.mark.slow
@pytest.mark.one_backend
def test_sigkill_and_resume_give_the_uninterrupted_lrs(tmp_path):
    proc, out = _worker(tmp_path, "full", 12, 0, -1)
    assert proc.returncode == 0, proc.stderr[-3000:]
    full = _lrs(out)
    assert len(set(full)) >= 3

    proc, out = _worker(tmp_path, "cut", 12, 0, 5)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    assert len(_lrs(out)) == 6
    proc, out = _worker(tmp_path, "cut", 12, 6, -1)
    assert proc.returncode == 0, proc.stderr[-3000:]
    np.testing.assert_allclose(_lrs(out), full, rtol=1e-7)

    backup = str(tmp_path / "backup")
    proc, out = _worker(tmp_path, "bar", 12, 0, 5, backup)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    proc, out = _worker(tmp_path, "bar", 12, 0, -1, backup)  # B&R resumes
    assert proc.returncode == 0, proc.stderr[-3000:]
    np.testing.assert_allclose(_lrs(out), full, rtol=1e-7)
