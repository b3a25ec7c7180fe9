"""Schedules: values against independent float64 formulas, long-run
precision (host and in-graph), composition, serialization, validation."""

import math

import keras
import numpy as np
import pytest
from helpers import relative_error

from keras_trainplus import schedules as S
from keras_trainplus.schedules import _math

# ---------------------------------------------------------------------------
# Independent float64 references (written from the definitions, not from the
# library code).


def ref_linear(a, b, n, s):
    s = min(max(s, 0), n)
    return a + (b - a) * s / n


def ref_cosine(a, b, n, s):
    s = min(max(s, 0), n)
    return b + (a - b) * (1 + math.cos(math.pi * s / n)) / 2


def ref_geometric(a, b, n, s):
    s = min(max(s, 0), n)
    return a * (b / a) ** (s / n)


def ref_expdecay(a, rate, n, s, stair=False):
    p = s / n
    return a * rate ** (math.floor(p) if stair else p)


def ref_inv_sqrt(a, t, s):
    return a * math.sqrt(t / (t + s))


def ref_cyclic(lo, hi, up, down, s, scale=lambda c, i: 1.0):
    total = up + down
    cycle = math.floor(1 + s / total)
    x = 1.0 + s / total - cycle
    r = up / total
    h = x / r if x <= r else (x - 1) / (r - 1)
    return lo + (hi - lo) * h * scale(cycle, s)


CASES = [
    (
        "linear",
        S.Linear(0.1, 0.0, 1000),
        lambda s: ref_linear(0.1, 0.0, 1000, s),
    ),
    ("linear_up", S.Linear(0.0, 2.0, 7), lambda s: ref_linear(0.0, 2.0, 7, s)),
    (
        "cosine",
        S.Cosine(1e-3, 1e-5, 500),
        lambda s: ref_cosine(1e-3, 1e-5, 500, s),
    ),
    (
        "geometric",
        S.Geometric(1e-7, 10.0, 100),
        lambda s: ref_geometric(1e-7, 10.0, 100, s),
    ),
    (
        "expdecay",
        S.ExponentialDecay(0.1, 0.96, 100),
        lambda s: ref_expdecay(0.1, 0.96, 100, s),
    ),
    (
        "expdecay_stair",
        S.ExponentialDecay(0.1, 0.5, 30, staircase=True),
        lambda s: ref_expdecay(0.1, 0.5, 30, s, True),
    ),
    (
        "inv_sqrt",
        S.InverseSqrtDecay(1e-3, 4000),
        lambda s: ref_inv_sqrt(1e-3, 4000, s),
    ),
    (
        "step",
        S.StepDecay(1.0, step_size=30, gamma=0.1),
        lambda s: 0.1 ** (s // 30),
    ),
    (
        "multistep",
        S.StepDecay(1.0, gamma=0.5, milestones=[10, 25]),
        lambda s: 0.5 ** ((s >= 10) + (s >= 25)),
    ),
    (
        "piecewise",
        S.PiecewiseConstant([10, 20], [3.0, 2.0, 1.0]),
        lambda s: 3.0 if s < 10 else (2.0 if s < 20 else 1.0),
    ),
    (
        "cyclic_tri2",
        S.Cyclical(0.001, 0.006, 20, 30, mode="triangular2"),
        lambda s: ref_cyclic(
            0.001, 0.006, 20, 30, s, lambda c, i: 1 / 2 ** (c - 1)
        ),
    ),
    (
        "cyclic_frac",
        S.Cyclical(0.0, 1.0, 2.5, 3.5),
        lambda s: ref_cyclic(0.0, 1.0, 2.5, 3.5, s),
    ),
    (
        "restart",
        S.Restart(S.Linear(1.0, 0.0, 10), 10),
        lambda s: ref_linear(1.0, 0.0, 10, s % 10),
    ),
    (
        "join",
        S.Join([S.Linear(0.0, 1.0, 10), S.Cosine(1.0, 0.1, 90)], [10]),
        lambda s: (
            ref_linear(0.0, 1.0, 10, s)
            if s < 10
            else ref_cosine(1.0, 0.1, 90, s - 10)
        ),
    ),
    (
        "product",
        S.Linear(0.0, 1.0, 10) * S.ExponentialDecay(2.0, 0.5, 5),
        lambda s: ref_linear(0.0, 1.0, 10, s) * ref_expdecay(2.0, 0.5, 5, s),
    ),
]
STEPS = list(range(0, 60)) + [99, 100, 101, 499, 500, 999, 1000, 4321]


@pytest.mark.parametrize("name,schedule,ref", CASES, ids=[c[0] for c in CASES])
def test_host_values_match_reference(name, schedule, ref):
    got = [schedule(s) for s in STEPS]
    want = [ref(s) for s in STEPS]
    assert all(isinstance(g, np.float64) for g in got)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("name,schedule,ref", CASES, ids=[c[0] for c in CASES])
def test_graph_values_match_host(name, schedule, ref):
    steps = keras.ops.convert_to_tensor(np.array(STEPS), dtype="int32")
    got = keras.ops.convert_to_numpy(schedule(steps))
    want = np.array([ref(s) for s in STEPS])
    rtol = 1e-12 if _math.float_dtype() == "float64" else 2e-6
    np.testing.assert_allclose(got, want, rtol=rtol, atol=1e-30)


LONG = 10**8
LONG_CASES = [
    # (schedule, reference at step LONG, at step LONG - 1)
    (
        S.Linear(1.0, 0.0, LONG + 10),
        lambda s: 1.0 * (LONG + 10 - s) / (LONG + 10),
    ),
    (S.Cosine(1.0, 0.0, 2 * LONG), lambda s: ref_cosine(1.0, 0.0, 2 * LONG, s)),
    (S.InverseSqrtDecay(1e-3, 4000), lambda s: ref_inv_sqrt(1e-3, 4000, s)),
    (
        S.ExponentialDecay(1.0, 0.99, 10**6),
        lambda s: ref_expdecay(1.0, 0.99, 10**6, s),
    ),
    (
        S.Cyclical(0.001, 0.006, 2000, 1000),
        lambda s: ref_cyclic(0.001, 0.006, 2000, 1000, s),
    ),
    (
        S.Cyclical(0.001, 0.006, 7, 13, mode="triangular2"),
        lambda s: ref_cyclic(
            0.001, 0.006, 7, 13, s, lambda c, i: 2.0 ** (1 - c)
        ),
    ),
    (
        S.StepDecay(1.0, step_size=10**7, gamma=0.5),
        lambda s: 0.5 ** (s // 10**7),
    ),
    (
        S.Restart(S.Linear(1.0, 0.0, 1000), 1000),
        lambda s: 1.0 - (s % 1000) / 1000,
    ),
    (S.OneCycle(0.1, 3 * LONG), None),
]


@pytest.mark.parametrize("i", range(len(LONG_CASES)))
def test_exact_for_long_runs(i):
    """Values at step 1e8 (and around 2**24) match float64 to 1e-6, both on
    the host and in-graph, where a float32 step would be off by up to 4."""
    schedule, ref = LONG_CASES[i]
    steps = [LONG - 1, LONG, LONG + 1, 2**24, 2**24 + 1]
    if ref is None:  # OneCycle: compare with its own host float64 path
        want = [schedule(s) for s in steps]
    else:
        want = [ref(s) for s in steps]
    host = [schedule(s) for s in steps]
    assert relative_error(host, want) < 1e-9
    tensor = keras.ops.convert_to_tensor(
        np.array(steps), dtype=_math.int_dtype()
    )
    graph = keras.ops.convert_to_numpy(schedule(tensor))
    assert relative_error(graph, want) < 1e-6


def test_step_two_pow_24_plus_one_is_distinct():
    # A float32 step cannot tell 2**24 from 2**24 + 1; integer steps can.
    s = S.Join([S.Constant(0.0), S.Linear(0.0, 1.0, 10)], [2**24])
    step = keras.ops.convert_to_tensor(
        np.array([2**24, 2**24 + 1, 2**24 + 3]), dtype=_math.int_dtype()
    )
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(s(step)), [0.0, 0.1, 0.3], rtol=1e-6
    )


def test_schedule_accepts_optimizer_iterations_variable():
    opt = keras.optimizers.SGD(learning_rate=S.Linear(1.0, 0.0, 10))
    assert float(keras.ops.convert_to_numpy(opt.learning_rate)) == 1.0


def test_cyclical_custom_scale_functions():
    """A schedule as scale_fn is exact and serializable; a plain callable
    that rejects tensors (math.sin) is tabulated."""
    gamma = S.ExponentialDecay(1.0, 0.9, 1)  # 0.9 ** x
    a = S.Cyclical(
        0.0, 1.0, 5, mode="triangular", scale_fn=gamma, scale_mode="cycle"
    )
    sine = S.Cyclical(
        0.0, 1.0, 5, scale_fn=lambda x: 0.5 * (1 + math.sin(x * math.pi / 2))
    )
    steps = list(range(40))
    want_a = [ref_cyclic(0, 1, 5, 5, s, lambda c, i: 0.9**c) for s in steps]
    want_s = [
        ref_cyclic(
            0, 1, 5, 5, s, lambda c, i: 0.5 * (1 + math.sin(c * math.pi / 2))
        )
        for s in steps
    ]
    t = keras.ops.convert_to_tensor(np.array(steps), dtype="int32")
    np.testing.assert_allclose([a(s) for s in steps], want_a, rtol=1e-12)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(a(t)), want_a, rtol=1e-6, atol=1e-12
    )
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(sine(t)), want_s, rtol=1e-6, atol=1e-12
    )
    restored = S.Cyclical.from_config(a.get_config())
    assert restored(17) == a(17)
    with pytest.raises(ValueError, match="cannot be serialized"):
        sine.get_config()


@keras.saving.register_keras_serializable(package="tests")
def half_sine(x):
    return 0.5 * (1 + keras.ops.sin(x * math.pi / 2))


def test_registered_scale_function_round_trips():
    s = S.Cyclical(0.0, 1.0, 4, scale_fn=half_sine)
    cfg = keras.saving.serialize_keras_object(s)
    back = keras.saving.deserialize_keras_object(cfg)
    assert back.scale_fn is half_sine
    assert back(6) == pytest.approx(s(6))


ALL = [c[1] for c in CASES] + [
    S.Constant(0.3),
    S.OneCycle(0.1, 100, three_phase=True),
    S.PiecewiseAnneal([3.5, 9], [0.0, 1.0, 0.2], "linear"),
    S.PerEpoch([1e-3, 2e-3]) * S.Linear(0.0, 1.0, 10),
    S.PerEpoch({0: 1.0, 5: 0.5}),
    S.PerEpoch(S.StepDecay(1.0, 2)),
    S.BaseValue() * 2.0,
]


@pytest.mark.parametrize("i", range(len(ALL)))
def test_serialization_round_trip(i):
    schedule = ALL[i]
    cfg = keras.saving.serialize_keras_object(schedule)
    back = keras.saving.deserialize_keras_object(cfg)
    assert type(back) is type(schedule)
    assert back.get_config() == schedule.get_config()
    assert "lambda" not in repr(cfg)
    if not schedule.uses_base():
        assert back(37) == schedule(37)
    else:
        assert back.evaluate(3, base=0.5) == schedule.evaluate(3, base=0.5)


def test_schedule_as_optimizer_learning_rate_saves_in_keras_file(tmp_path):
    lr = S.Join([S.Linear(0.0, 0.1, 5), S.Cosine(0.1, 0.0, 20)], [5])
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(learning_rate=lr), loss="mse")
    model.fit(np.ones((8, 3)), np.ones((8, 1)), epochs=1, verbose=0)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(
        loaded.optimizer.learning_rate_schedule
        if hasattr(loaded.optimizer, "learning_rate_schedule")
        else loaded.optimizer._learning_rate,
        S.Join,
    )
    assert float(
        keras.ops.convert_to_numpy(loaded.optimizer.learning_rate)
    ) == pytest.approx(float(lr(1)), rel=1e-6)


def test_base_value_needs_a_driver():
    with pytest.raises(ValueError, match="knob"):
        S.BaseValue()(3)
    assert S.BaseValue().evaluate(3, base=0.25) == 0.25


def test_per_epoch_values():
    lst = S.PerEpoch([1.0, 2.0, 3.0])
    assert [lst.value_at(e) for e in range(5)] == [1.0, 2.0, 3.0, 3.0, 3.0]
    dct = S.PerEpoch({2: 1.0, 5: 0.5, 7: 1.0})
    assert [dct.value_at(e) for e in (0, 1, 2, 6, 7, 100)] == [
        None,
        None,
        1.0,
        0.5,
        1.0,
        1.0,
    ]
    sch = S.PerEpoch(S.StepDecay(1.0, 2, 0.5))
    assert sch.value_at(5) == 0.25


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: S.Linear(0.0, 1.0, 0), "duration"),
        (lambda: S.Linear(float("nan"), 1.0, 3), "start_value"),
        (lambda: S.Geometric(0.0, 1.0, 3), "start_value"),
        (lambda: S.Cosine(1.0, 0.0, -2), "duration"),
        (lambda: S.ExponentialDecay(1.0, 0.0, 10), "decay_rate"),
        (lambda: S.ExponentialDecay(1.0, 0.5, 0), "decay_steps"),
        (lambda: S.InverseSqrtDecay(1.0, 0), "timescale"),
        (lambda: S.StepDecay(1.0), "exactly one"),
        (lambda: S.StepDecay(1.0, gamma=0.5, milestones=[5, 3]), "milestones"),
        (lambda: S.PiecewiseConstant([1, 2], [1.0]), "values"),
        (lambda: S.Join([S.Constant(1.0)], [3]), "schedules"),
        (lambda: S.Join([1.0, "x"], [3]), "schedules"),
        (lambda: S.Restart(S.Constant(1.0), 0), "period"),
        (lambda: S.Cyclical(0.1, 0.2, 0), "step_size_up"),
        (lambda: S.Cyclical(0.1, 0.2, 10, mode="sine"), "mode"),
        (lambda: S.Cyclical(0.1, 0.2, 10, scale_fn=3), "scale_fn"),
        (lambda: S.Cyclical(0.1, 0.2, 10, scale_mode="x"), "scale_mode"),
        (lambda: S.OneCycle(0.1, 100, pct_start=1.0), "pct_start"),
        (lambda: S.OneCycle(0.1, 100, pct_start=0.0), "pct_start"),
        (lambda: S.OneCycle(0.1, 3, pct_start=0.1), "empty phase"),
        (
            lambda: S.OneCycle(0.1, 100, anneal_strategy="exp"),
            "anneal_strategy",
        ),
        (lambda: S.PiecewiseAnneal([2, 1], [0, 1, 2]), "boundaries"),
        (lambda: S.PerEpoch([]), "values"),
        (lambda: S.PerEpoch("abc"), "values"),
        (lambda: S.Product([]), "schedules"),
    ],
)
def test_invalid_arguments_raise_value_error(make, match):
    with pytest.raises(ValueError, match=match) as info:
        make()
    assert "Received" in str(info.value) or "Pass exactly" in str(info.value)


def test_equal_schedules_hash_alike_and_horizon_reaches_nested_ones():
    a, b = S.Linear(0.0, 1.0, 10), S.Linear(0.0, 1.0, 10)
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert S.Linear(0.0, 1.0, 11) not in {a}
    inner = S.Cyclical(0.1, 1.0, 4, scale_fn=lambda x: 1.0)
    joined = S.Join([S.Constant(0.1), inner], [5])
    assert joined.set_horizon(100) is joined
    assert inner._horizon == 100


def test_cos_and_cosine_name_the_same_curve():
    from keras_trainplus import callbacks as C

    assert (
        C.OneCycleLR(
            0.1, total_steps=10, anneal_strategy="cosine"
        ).anneal_strategy
        == "cos"
    )
    assert C.WarmupDecayLR(0.1, 5, decay="cos", total_steps=100).decay == (
        "cosine"
    )
    with pytest.raises(ValueError, match="anneal_strategy"):
        C.OneCycleLR(0.1, total_steps=10, anneal_strategy="cosin")
