"""Layer-wise learning rates and freezing (target ``"lr_multiplier:<layer>"``,
`DiscriminativeLR`, `GradualUnfreezing`), measured in compiled `fit`s: each
update against a stock optimizer stepped from the same state."""

import copy

import keras
import numpy as np
import pytest

from keras_trainplus import _internals as internals
from keras_trainplus import callbacks as C
from keras_trainplus import schedules as S
from tests.helpers import BACKEND
from tests.helpers import CountTraces
from tests.helpers import jit_values
from tests.helpers import spe_values

B, N = 8, 48  # batch size, samples: 6 updates per epoch
LR = 0.05


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N, 6)).astype("float32")
    y = (np.tanh(x @ rng.normal(size=(6, 1))) + 0.3).astype("float32")
    return x, y


def _optimizer(name, lr=LR):
    return {
        "sgd": lambda: keras.optimizers.SGD(lr),
        "momentum": lambda: keras.optimizers.SGD(lr, momentum=0.9),
        "adam": lambda: keras.optimizers.Adam(lr),
        "adamw": lambda: keras.optimizers.AdamW(lr, weight_decay=0.2),
        "nadam": lambda: keras.optimizers.Nadam(lr),
    }[name]()


def _model(optimizer="adam", spe=1, bn=False, jit="auto", counter=False):
    keras.utils.set_random_seed(3)
    layers = [keras.Input((6,)), keras.layers.Dense(5, name="a")]
    if bn:
        layers.append(keras.layers.BatchNormalization(name="bn"))
    layers.append(keras.layers.Activation("tanh"))
    if counter:
        layers.append(CountTraces())
    layers += [
        keras.layers.Dense(4, activation="tanh", name="b"),
        keras.layers.Dense(1, name="head"),
    ]
    model = keras.Sequential(layers)
    if isinstance(optimizer, str):
        optimizer = _optimizer(optimizer)
    model.compile(optimizer, "mse", steps_per_execution=spe, jit_compile=jit)
    model.optimizer.build(model.trainable_variables)
    return model


def _opt_state(model):
    """The optimizer's variables but its learning rate."""
    return [v for v in model.optimizer.variables if v.name != "learning_rate"]


def _sync(source, target):
    """`target` takes `source`'s weights and optimizer state."""
    for a, b in zip(source.weights, target.weights):
        b.assign(a.numpy())
    for a, b in zip(_opt_state(source), _opt_state(target)):
        b.assign(a.numpy())


def _layer_state(model, name):
    """A layer's variables and their optimizer slots, as arrays."""
    layer, opt = model.get_layer(name), model.optimizer
    slots = internals.optimizer_slots.slots_by_index(opt)
    out = [v.numpy().copy() for v in layer.weights]
    for v in layer.trainable_variables:
        index = internals.gradient_accumulation.variable_index(opt, v)
        out += [s.numpy().copy() for s in slots[index]]
    return out


class StepAgainst(keras.callbacks.Callback):
    """Before every update: steps each reference (a stock model) from the
    model's state on the same batch; after it: records both."""

    def __init__(self, references, x, y):
        super().__init__()
        self.references, self.x, self.y = references, x, y
        self.pairs = []  # (ours, [reference weights]) per update

    def on_train_batch_begin(self, batch, logs=None):
        lo = batch * B
        for ref in self.references:
            _sync(self.model, ref)
            ref.train_on_batch(self.x[lo : lo + B], self.y[lo : lo + B])

    def on_train_batch_end(self, batch, logs=None):
        theirs = [
            {layer.name: layer.get_weights() for layer in ref.layers}
            for ref in self.references
        ]
        ours = {layer.name: layer.get_weights() for layer in self.model.layers}
        self.pairs.append((ours, theirs))


def _close(actual, expected, rtol=1e-6):
    for a, e in zip(actual, expected):
        np.testing.assert_allclose(a, e, rtol=rtol, atol=1e-7)


@pytest.mark.parametrize("name", ["sgd", "momentum", "adam", "adamw", "nadam"])
def test_update_equals_update_at_lr_times_multiplier(name):
    """Update by update: layer b moves as a stock optimizer at LR x 0.3
    would, the others as at LR (weight decay scales with the multiplier,
    Adam's bias correction keeps the global iterations)."""
    x, y = _data()
    model = _model(name)
    scaled = _model(_optimizer(name, LR * 0.3))
    plain = _model(name)
    probe = StepAgainst([scaled, plain], x, y)
    history = model.fit(
        x,
        y,
        batch_size=B,
        epochs=2,
        shuffle=False,
        verbose=0,
        callbacks=[C.HyperparameterScheduler({"lr_multiplier:b": 0.3}), probe],
    )
    assert len(probe.pairs) == 12
    for ours, (at_scaled, at_plain) in probe.pairs:
        _close(ours["b"], at_scaled["b"])
        for other in ("a", "head"):
            _close(ours[other], at_plain[other])
    assert history.history["lr_multiplier:b"] == [0.3, 0.3]


def test_frozen_layers_and_slots_are_bit_identical_then_resume():
    """All train in epoch 0 (slots non-zero), only the head in epochs 1-2,
    all again in epoch 3: the frozen layers (BatchNormalization included)
    and their slots do not change, and the first update after unfreezing
    is the stock update from those unchanged slots at the global step."""
    x, y = _data()
    model = _model("adamw", bn=True)
    reference = _model("adamw", bn=True)
    frozen = ("a", "bn", "b")
    snapshots = {}

    class Watch(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch in (1, 3):
                snapshots[epoch] = {
                    n: _layer_state(self.model, n) for n in frozen
                }
            if epoch == 3:
                _sync(self.model, reference)
                reference.train_on_batch(x[:B], y[:B])

        def on_train_batch_end(self, batch, logs=None):
            if "after" not in snapshots and len(snapshots) == 2:
                snapshots["after"] = {
                    layer.name: layer.get_weights()
                    for layer in self.model.layers
                }

    history = model.fit(
        x,
        y,
        batch_size=B,
        epochs=4,
        shuffle=False,
        verbose=0,
        callbacks=[C.GradualUnfreezing({0: "all", 1: 1, 3: "all"}), Watch()],
    )
    for name in frozen:
        for before, after in zip(snapshots[1][name], snapshots[3][name]):
            np.testing.assert_array_equal(before, after)
        # Epoch 0 trained them: the slots are not trivially zero.
        assert any(np.any(s != 0) for s in snapshots[1][name][2:])
    for ours, theirs in zip(model.layers, reference.layers):
        _close(snapshots["after"][ours.name], theirs.get_weights())
    assert history.history["lr_multiplier:a"] == [1.0, 0.0, 0.0, 1.0]
    assert history.history["unfrozen_layers"] == [4.0, 1.0, 1.0, 4.0]


def test_frozen_batch_norm_runs_in_inference_mode():
    """Everything frozen: the training loss is the inference loss on the
    same batches (BatchNormalization uses and keeps its statistics)."""
    x, y = _data()
    model = _model("adam", bn=True)
    model.fit(x, y, batch_size=B, epochs=1, shuffle=False, verbose=0)
    history = model.fit(
        x,
        y,
        batch_size=B,
        epochs=1,
        shuffle=False,
        verbose=0,
        callbacks=[C.GradualUnfreezing({0: 0})],
    )
    evaluated = model.evaluate(x, y, batch_size=B, verbose=0)
    np.testing.assert_allclose(history.history["loss"][0], evaluated, rtol=1e-5)


def test_multipliers_and_freezing_never_retrace():
    x, y = _data()
    model = _model("adam", bn=True, counter=True)
    CountTraces.traces = 0
    model.fit(
        x,
        y,
        batch_size=B,
        epochs=4,
        shuffle=False,
        verbose=0,
        callbacks=[
            C.HyperparameterScheduler(
                {
                    "lr_multiplier:a": S.PerEpoch([0.5, 0.0, 2.0, 0.0]),
                    "lr_multiplier:bn": S.PerEpoch([0.0, 1.0, 0.0, 1.0]),
                }
            )
        ],
    )
    if BACKEND != "torch":  # (torch runs eagerly: `call` runs per step)
        assert CountTraces.traces <= 2  # the step (and a symbolic build)


@pytest.mark.parametrize("jit", jit_values())
def test_per_step_multiplier_is_exact_at_any_steps_per_execution(jit):
    """A per-step multiplier that reaches 0 (freezing mid-epoch): the same
    weights at every steps_per_execution as at 1."""
    x, y = _data()
    runs = []
    for spe in spe_values():
        model = _model("adam", spe=spe, jit=jit)
        model.fit(
            x,
            y,
            batch_size=B,
            epochs=2,
            shuffle=False,
            verbose=0,
            callbacks=[
                C.HyperparameterScheduler(
                    {"lr_multiplier:a": S.Linear(2.0, 0.0, 8)}
                )
            ],
        )
        runs.append(model)
    for other in runs[1:]:
        _close(other.get_weights(), runs[0].get_weights(), rtol=1e-5)
    # Frozen from update 8 on: the last 4 updates left layer a alone.
    assert runs[0].get_layer("a").get_weights()[0].std() > 0


def test_discriminative_and_unfreezing_multiply_in_either_order():
    x, y = _data()
    results = []
    for order in (0, 1):
        model = _model("adam")
        callbacks = [
            C.DiscriminativeLR({"a": 0.25, "b": 0.5}),
            C.GradualUnfreezing({0: 1, 1: 2, 2: "all"}),
        ]
        history = model.fit(
            x,
            y,
            batch_size=B,
            epochs=3,
            shuffle=False,
            verbose=0,
            callbacks=callbacks[::-1] if order else callbacks,
        )
        results.append((model.get_weights(), history.history))
    _close(results[0][0], results[1][0], rtol=0)
    logs = results[0][1]
    assert logs == results[1][1]
    assert logs["lr_multiplier:a"] == [0.0, 0.0, 0.25]
    assert logs["lr_multiplier:b"] == [0.0, 0.5, 0.5]


def test_decay_gives_each_layer_below_the_factor_times_decay():
    inner = keras.Sequential(
        [keras.Input((5,)), keras.layers.Dense(5, name="i1")], name="body"
    )
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(5, name="a"),
            keras.layers.Dense(5, name="off", trainable=False),
            inner,
            keras.layers.Dense(1, name="head"),
        ]
    )
    model.compile(keras.optimizers.SGD(LR), "mse")
    x, y = _data()
    history = model.fit(
        x,
        y,
        batch_size=B,
        epochs=1,
        verbose=0,
        callbacks=[C.DiscriminativeLR(decay=0.5)],
    )
    logs = {k: v[0] for k, v in history.history.items() if k != "loss"}
    assert logs == {
        "lr_multiplier:head": 1.0,
        "lr_multiplier:i1": 0.5,
        "lr_multiplier:a": 0.25,
    }


def test_checkpoint_written_while_fine_tuning_loads_as_a_plain_model(
    tmp_path,
):
    x, y = _data()
    model = _model("adamw", bn=True)
    path = str(tmp_path / "ft.keras")
    model.fit(
        x,
        y,
        batch_size=B,
        epochs=2,
        shuffle=False,
        verbose=0,
        callbacks=[
            C.DiscriminativeLR(decay=0.5),
            C.GradualUnfreezing({0: 1}),
            keras.callbacks.ModelCheckpoint(path),
        ],
    )
    loaded = keras.models.load_model(path)
    assert [layer.trainable for layer in loaded.layers] == [
        layer.trainable for layer in model.layers
    ]
    assert len(loaded.optimizer.variables) == len(model.optimizer.variables)
    for a, b in zip(loaded.optimizer.variables, model.optimizer.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    _close(loaded.get_weights(), model.get_weights(), rtol=0)


def _is_stock(model):
    opt = model.optimizer
    extra = {k for k in opt.__dict__ if k.startswith("_keras_trainplus")}
    methods = {"update_step", "_backend_update_step", "_apply_weight_decay"}
    methods |= {"_backend_apply_gradients"}
    assert not extra and not methods & set(opt.__dict__)
    for layer in model.layers:
        assert "call" not in layer.__dict__
    assert len(opt.variables) == len(
        _model("adamw", bn=True).optimizer.variables
    )


def test_model_is_stock_after_fit_and_after_an_exception():
    x, y = _data()
    model = _model("adamw", bn=True)
    model.fit(
        x,
        y,
        batch_size=B,
        epochs=2,
        verbose=0,
        callbacks=[C.GradualUnfreezing({0: 1}), C.DiscriminativeLR(decay=0.9)],
    )
    _is_stock(model)

    class Boom(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 2:
                raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        model.fit(
            x,
            y,
            batch_size=B,
            epochs=2,
            verbose=0,
            callbacks=[C.GradualUnfreezing({0: 1}), Boom()],
        )
    _is_stock(model)
    before = model.get_weights()
    model.fit(x, y, batch_size=B, epochs=1, verbose=0)  # all layers train
    assert not np.array_equal(before[0], model.get_weights()[0])


def test_unknown_layers_are_named():
    x, y = _data()
    for callback, match in (
        (C.HyperparameterScheduler({"lr_multiplier:nope": 0.5}), "'nope'"),
        (C.DiscriminativeLR({"a": 0.5, "missing": 2.0}), "'missing'"),
        (C.GradualUnfreezing({0: ["head"], 2: ["gone"]}), "'gone'"),
    ):
        with pytest.raises(ValueError, match=match):
            _model().fit(x, y, epochs=1, verbose=0, callbacks=[callback])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({}, "exactly one"),
        ({"multipliers": {"a": 1.0}, "decay": 0.5}, "exactly one"),
        ({"multipliers": {"a": -1.0}}, r"multipliers\['a'\]"),
        ({"multipliers": {"a": float("inf")}}, r"multipliers\['a'\]"),
        ({"multipliers": {"a": "x"}}, r"multipliers\['a'\]"),
        ({"multipliers": {}}, "multipliers"),
        ({"multipliers": [("a", 1.0)]}, "multipliers"),
        ({"decay": 0.0}, "decay"),
        ({"decay": "0.5"}, "decay"),
    ],
)
def test_discriminative_lr_bad_arguments(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        C.DiscriminativeLR(**kwargs)


@pytest.mark.parametrize(
    "schedule, match",
    [
        ([1, 2], "schedule"),
        ({}, "schedule"),
        ({0: -1}, r"schedule\[0\]"),
        ({0: "most"}, r"schedule\[0\]"),
        ({0: True}, r"schedule\[0\]"),
        ({1: [3]}, r"schedule\[1\]"),
        ({-1: 2}, "epoch"),
        ({"0": 2}, "epoch"),
    ],
)
def test_gradual_unfreezing_bad_arguments(schedule, match):
    with pytest.raises((ValueError, TypeError), match=match):
        C.GradualUnfreezing(schedule)


def test_config_round_trip_and_deep_copy():
    model = _model()
    layer = model.get_layer("b")
    for callback in (
        C.DiscriminativeLR({"a": 0.5, layer: 0.25}),
        C.DiscriminativeLR(decay=0.65),
        C.GradualUnfreezing({0: 1, 1: ["b", layer], 3: "all"}),
    ):
        config = callback.get_config()
        again = type(callback).from_config(config)
        assert again.get_config() == config
        clone = copy.deepcopy(callback)
        assert clone.get_config() == config
    clone = copy.deepcopy(C.DiscriminativeLR({layer: 0.5}))
    assert next(iter(clone.multipliers)) is layer


def test_layers_the_user_froze_never_train():
    x, y = _data()
    model = _model("adam")
    model.get_layer("a").trainable = False
    model.compile(keras.optimizers.Adam(LR), "mse")
    before = model.get_layer("a").get_weights()
    model.fit(
        x,
        y,
        batch_size=B,
        epochs=2,
        verbose=0,
        callbacks=[C.GradualUnfreezing({0: 1, 1: "all"})],
    )
    for a, b in zip(before, model.get_layer("a").get_weights()):
        np.testing.assert_array_equal(a, b)


def test_scheduled_weight_decay_composes_with_multipliers():
    """A weight-decay schedule and multiplier 0.5 on every layer: the run
    at half the learning rate with the same schedule."""
    x, y = _data()
    decay = S.Linear(0.4, 0.0, 12)
    runs = []
    for lr, multipliers in ((LR, True), (LR * 0.5, False)):
        model = _model(keras.optimizers.AdamW(lr, weight_decay=0.1))
        schedules = {"weight_decay": decay}
        if multipliers:
            for name in ("a", "b", "head"):
                schedules[f"lr_multiplier:{name}"] = S.PerEpoch([0.5])
        model.fit(
            x,
            y,
            batch_size=B,
            epochs=2,
            shuffle=False,
            verbose=0,
            callbacks=[C.HyperparameterScheduler(schedules)],
        )
        runs.append(model.get_weights())
    _close(runs[0], runs[1], rtol=1e-5)


@pytest.mark.parametrize("clip", ["optimizer", "scheduler"])
def test_frozen_is_trainable_false_under_global_norm_clipping(clip):
    """Only the head trains, the gradient clipped by its global norm: the
    same run as with the other layers set `trainable=False` (their
    gradients leave the norm; BatchNormalization in inference mode)."""
    x, y = _data()
    kwargs = {"global_clipnorm": 0.05} if clip == "optimizer" else {}
    extra = [] if kwargs else [C.GradientClipScheduler({0: 0.05})]
    ours = _model(keras.optimizers.Adam(LR, **kwargs), bn=True)
    ours.fit(
        x,
        y,
        batch_size=B,
        epochs=2,
        shuffle=False,
        verbose=0,
        callbacks=[C.GradualUnfreezing({0: 1}), *extra],
    )
    stock = _model("adam", bn=True)
    for name in ("a", "bn", "b"):
        stock.get_layer(name).trainable = False
    stock.compile(keras.optimizers.Adam(LR, **kwargs), "mse")
    stock.fit(
        x, y, batch_size=B, epochs=2, shuffle=False, verbose=0, callbacks=extra
    )
    _close(ours.get_weights(), stock.get_weights(), rtol=1e-5)


def _towers():
    """Two nested towers with a layer named "fc" each (legal in Keras),
    and a subclassed backbone that owns a weight besides its layer."""

    class Scaled(keras.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.fc = keras.layers.Dense(4, name="fc")

        def build(self, shape):
            self.scale = self.add_weight(shape=(4,), initializer="ones")
            self.fc.build(shape)

        def call(self, x):
            return keras.ops.tanh(self.fc(x)) * self.scale

    keras.utils.set_random_seed(0)
    inputs = keras.Input((6,))
    towers = [
        keras.Sequential(
            [keras.Input((6,)), keras.layers.Dense(4, name="fc")], name=name
        )
        for name in ("tower_a", "tower_b")
    ]
    parts = [t(inputs) for t in towers] + [Scaled(name="scaled")(inputs)]
    joined = keras.layers.Concatenate()(parts)
    model = keras.Model(inputs, keras.layers.Dense(1, name="head")(joined))
    model.compile(keras.optimizers.Adam(LR), "mse")
    return model


def test_names_used_twice_and_a_nested_models_own_weights():
    x, y = _data()
    model = _towers()
    before = {v.path: v.numpy().copy() for v in model.trainable_variables}
    history = model.fit(
        x,
        y,
        batch_size=B,
        epochs=2,
        verbose=0,
        callbacks=[
            C.GradualUnfreezing({0: ["head"], 1: ["tower_a/fc", "head"]}),
            C.DiscriminativeLR(decay=0.5),
        ],
    )
    logs = history.history
    # Depth order: tower_a/fc, tower_b/fc, scaled/fc, scaled (own), head.
    assert logs["lr_multiplier:tower_a/fc"] == [0.0, 0.0625]
    assert logs["lr_multiplier:tower_b/fc"] == [0.0, 0.0]
    assert logs["lr_multiplier:scaled"] == [0.0, 0.0]  # its own `scale`
    for v in model.trainable_variables:
        moved = not np.array_equal(before[v.path], v.numpy())
        assert moved == v.path.startswith(("tower_a", "head")), v.path
    with pytest.raises(ValueError, match="tower_a/fc"):
        model.fit(
            x,
            y,
            epochs=1,
            verbose=0,
            callbacks=[C.HyperparameterScheduler({"lr_multiplier:fc": 0.5})],
        )


def test_a_layer_inside_a_scaled_model_logs_the_product():
    x, y = _data()
    model = _towers()
    history = model.fit(
        x,
        y,
        batch_size=B,
        epochs=1,
        verbose=0,
        callbacks=[C.DiscriminativeLR({"tower_a": 0.5, "tower_a/fc": 0.5})],
    )
    assert history.history["lr_multiplier:tower_a/fc"] == [0.25]
    # tower_a's variables are all fc's: they all used 0.25.
    assert history.history["lr_multiplier:tower_a"] == [0.25]


def test_frozen_sparse_gradients_stay_out_of_the_global_norm():
    """An Embedding's gradient is sparse on TF: frozen, it must leave the
    global norm of the clip too (= `trainable=False`)."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 20, size=(N, 3))
    y = rng.normal(size=(N, 1)).astype("float32")
    runs = []
    for frozen_by in ("callback", "trainable"):
        keras.utils.set_random_seed(0)
        model = keras.Sequential(
            [
                keras.Input((3,), dtype="int32"),
                keras.layers.Embedding(20, 4, name="emb"),
                keras.layers.Flatten(),
                keras.layers.Dense(1, name="head"),
            ]
        )
        callbacks = [C.GradualUnfreezing({0: ["head"]})]
        if frozen_by == "trainable":
            model.get_layer("emb").trainable = False
            callbacks = []
        model.compile(keras.optimizers.SGD(0.1, global_clipnorm=0.01), "mse")
        model.fit(
            x,
            y,
            batch_size=B,
            epochs=2,
            shuffle=False,
            verbose=0,
            callbacks=callbacks,
        )
        runs.append(model.get_weights())
    _close(runs[0], runs[1], rtol=1e-6)


def test_interrupted_run_resumes_with_backup_and_restore(tmp_path):
    """Stopped by an exception after epoch 1, resumed by `BackupAndRestore`:
    the same weights and logs as the uninterrupted run (the unfreezing
    schedule follows the epoch)."""
    x, y = _data()

    def callbacks():
        return [
            C.GradualUnfreezing({0: 1, 1: 2, 2: "all"}),
            C.DiscriminativeLR(decay=0.5),
        ]

    reference = _model("sgd")
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

    model = _model("sgd")
    backup = str(tmp_path / "backup")
    with pytest.raises(RuntimeError, match="stop"):
        model.fit(
            x,
            y,
            batch_size=B,
            epochs=4,
            shuffle=False,
            verbose=0,
            callbacks=[
                *callbacks(),
                keras.callbacks.BackupAndRestore(backup),
                Stop(),
            ],
        )
    resumed = _model("sgd")
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
    for key in ("lr_multiplier:a", "lr_multiplier:b", "unfrozen_layers"):
        assert history[key] == expected[key][2:], key


def test_config_names_layer_objects_by_path():
    """Layer objects named like another layer round-trip through the
    config by path."""
    x, y = _data()
    model = _towers()
    fc, head = (
        model.get_layer("tower_a").get_layer("fc"),
        model.get_layer("head"),
    )
    for callback, frozen, trained in (
        (C.DiscriminativeLR({fc: 0.0}), fc, head),
        (C.GradualUnfreezing({0: [fc]}), head, fc),
    ):
        again = type(callback).from_config(callback.get_config())
        assert "tower_a/fc" in str(again.get_config())
        before = [layer.get_weights()[0] for layer in (frozen, trained)]
        model.fit(x, y, batch_size=B, epochs=1, verbose=0, callbacks=[again])
        np.testing.assert_array_equal(before[0], frozen.get_weights()[0])
        assert not np.array_equal(before[1], trained.get_weights()[0])


@pytest.mark.parametrize("overwrite", [None, 3])
def test_frozen_layers_stay_frozen_under_keras_ema(overwrite):
    """`use_ema=True`: Keras averages (and overwrites) every variable; a
    frozen one and its average are left alone (the average pauses)."""
    x, y = _data()
    optimizer = keras.optimizers.AdamW(
        LR, use_ema=True, ema_overwrite_frequency=overwrite
    )
    model = _model(optimizer)
    seen = {}

    def averages():
        return [
            v.numpy().copy() for v in optimizer.variables if "average" in v.name
        ]

    class Watch(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:
                seen["before"] = (_layer_state(model, "a"), averages())

        def on_epoch_end(self, epoch, logs=None):
            if epoch == 2:
                seen["after"] = (_layer_state(model, "a"), averages())

    schedule = S.PerEpoch([1.0, 0.0, 0.0])
    model.fit(
        x,
        y,
        batch_size=B,
        epochs=3,
        verbose=0,
        callbacks=[
            C.HyperparameterScheduler({"lr_multiplier:a": schedule}),
            Watch(),
        ],
    )
    for a, b in zip(seen["before"][0], seen["after"][0]):
        np.testing.assert_array_equal(a, b)
    moved = [
        not np.array_equal(a, b)
        for a, b in zip(seen["before"][1], seen["after"][1])
    ]
    assert moved.count(False) == 2 and any(moved)  # a's kernel and bias
