"""Every public class and function rejects bad input clearly.

A corpus of bad inputs over the public API (construction only, plus the
first host evaluation of callables): each must raise `ValueError` or
`TypeError` whose message names the argument as the user wrote it and
echoes the value received. A few good forms check that nothing valid is
rejected.
"""

import math

import keras
import numpy as np
import pytest

import keras_trainplus as ktp
from keras_trainplus import _validation
from keras_trainplus import callbacks as C
from keras_trainplus import layers as L
from keras_trainplus import schedules as S

NAN = float("nan")
INF = math.inf

# Bad values by kind (each kind's values are all wrong for that kind).
NOT_A_NUMBER = ["0.1", None, True, [0.5], np.array([1.0, 2.0]), {}]
NON_FINITE = [NAN, INF, -INF]
REAL = NOT_A_NUMBER + NON_FINITE
POSITIVE = REAL + [0.0, -1.0]
NON_NEGATIVE = REAL + [-1e-3]
UNIT_OPEN = REAL + [-0.1, 1.0, 1.5]  # [0, 1)
INT_1 = ["3", None, True, 2.5, 0, -1, NAN]
INT_0 = ["3", None, False, 1.5, -1, INF]
CHOICE = ["nope", None, 1, ["cos"]]
BOOL = [1, "yes", None, 0.0]


def _cases(make, argument, values, ident):
    """One case per bad value: `make(value)` must name `argument`."""
    return [
        pytest.param(make, argument, value, id=f"{ident}-{i}")
        for i, value in enumerate(values)
    ]


def _kw(factory, argument, values, ident=None, **base):
    """Cases for `factory(**base, argument=value)`."""

    def make(value):
        return factory(**{**base, argument: value})

    return _cases(
        make,
        argument,
        values,
        ident or f"{getattr(factory, '__name__', 'f')}.{argument}",
    )


class FakeHP:
    """The part of `keras_tuner.HyperParameters` the helpers use."""

    def Fixed(self, name, value):
        return value

    def Float(self, name, low, high, sampling="linear"):
        return low

    def Int(self, name, low, high):
        return low

    def Choice(self, name, values):
        return values[0]


def _model():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(0.1), "mse")
    return model


def _result():
    lrs = np.geomspace(1e-4, 1.0, 20)
    return ktp.LRFinderResult(lrs, (np.log10(lrs) + 2.0) ** 2 + 1.0)


CASES = []

# -- schedules ----------------------------------------------------------------

for cls in (S.Linear, S.Cosine):
    CASES += _kw(cls, "start_value", REAL, end_value=1.0, duration=3)
    CASES += _kw(cls, "end_value", REAL, start_value=1.0, duration=3)
    CASES += _kw(cls, "duration", INT_1, start_value=0.0, end_value=1.0)
CASES += _kw(S.Geometric, "start_value", POSITIVE, end_value=1.0, duration=3)
CASES += _kw(
    S.Geometric, "end_value", [0.0, -2.0, "1"], start_value=1.0, duration=3
)
CASES += _kw(S.Constant, "value", NOT_A_NUMBER + [NAN, -INF])
CASES += _kw(
    S.ExponentialDecay,
    "initial_value",
    ["1", NAN],
    decay_rate=0.5,
    decay_steps=10,
)
CASES += _kw(
    S.ExponentialDecay,
    "decay_rate",
    POSITIVE,
    initial_value=1.0,
    decay_steps=10,
)
CASES += _kw(
    S.ExponentialDecay, "decay_steps", INT_1, initial_value=1.0, decay_rate=0.5
)
CASES += _kw(
    S.ExponentialDecay,
    "staircase",
    BOOL,
    initial_value=1.0,
    decay_rate=0.5,
    decay_steps=10,
)
CASES += _kw(S.InverseSqrtDecay, "initial_value", ["1", INF], timescale=10)
CASES += _kw(S.InverseSqrtDecay, "timescale", INT_1, initial_value=1.0)
CASES += _kw(
    S.StepDecay, "step_size", ["3", True, 2.5, 0, -4, NAN], initial_value=1.0
)
CASES += _kw(S.StepDecay, "gamma", POSITIVE, initial_value=1.0, step_size=3)
CASES += _kw(
    S.StepDecay, "milestones", ["5", 5, {5: 1}, [3, 3]], initial_value=1.0
)
CASES += _cases(
    lambda x: S.StepDecay(1.0, milestones=[3, x]),
    "milestones[1]",
    ["7", 2.5, 0, None],
    "StepDecay.milestone",
)
CASES += _cases(
    lambda x: S.PiecewiseConstant(x, [1.0, 2.0]),
    "boundaries",
    [5, "5", None, {5: 1}, [3, 2]],
    "PiecewiseConstant.bounds",
)
CASES += _cases(
    lambda x: S.PiecewiseConstant([5], x),
    "values",
    [1.0, "ab", None, [1.0], [1.0, 2.0, 3.0]],
    "PiecewiseConstant.values",
)
CASES += _cases(
    lambda x: S.PiecewiseConstant([5], [1.0, x]),
    "values[1]",
    REAL,
    "PiecewiseConstant.value",
)
CASES += _cases(
    lambda x: S.PiecewiseConstant.from_dict(x),
    "mapping",
    [[0, 1], None, {1: 1.0}, "0:1"],
    "from_dict",
)
CASES += _cases(
    lambda x: S.PiecewiseConstant.from_dict({0: 1.0, x: 2.0}),
    "mapping[",
    ["a", 2.5, -3],
    "from_dict.key",
)
CASES += _cases(
    lambda x: S.PiecewiseAnneal(x, [0.0, 1.0]),
    "boundaries",
    [2, None, "2", []],
    "PiecewiseAnneal.bounds",
)
CASES += _cases(
    lambda x: S.PiecewiseAnneal([x], [0.0, 1.0]),
    "boundaries[0]",
    [0, -1.0, NAN, "2"],
    "PiecewiseAnneal.bound",
)
CASES += _cases(
    lambda x: S.PiecewiseAnneal([2], x),
    "values",
    [1.0, None, [1.0]],
    "PiecewiseAnneal.values",
)
CASES += _cases(
    lambda x: S.PiecewiseAnneal([2], [0.0, 1.0], x),
    "anneal",
    CHOICE,
    "PiecewiseAnneal.anneal",
)
for arg, values in [
    ("initial_value", REAL),
    ("peak_value", ["1", INF]),
    ("step_size_up", POSITIVE),
    ("step_size_down", [0, -2.0, "3", NAN]),
    ("mode", CHOICE),
    ("gamma", POSITIVE),
    ("scale_fn", [3, "sin", [1.0]]),
    ("scale_mode", CHOICE),
]:
    base = dict(initial_value=0.1, peak_value=0.2)
    base.pop(arg, None)
    CASES += _kw(S.Cyclical, arg, values, **base)
for arg, values in [
    ("max_value", POSITIVE),
    ("total_steps", INT_1),
    ("pct_start", REAL + [0.0, 1.0]),
    ("anneal_strategy", CHOICE),
    ("div_factor", POSITIVE),
    ("final_div_factor", [0, -1.0, "x", NAN]),
    ("three_phase", BOOL),
]:
    base = dict(max_value=1.0, total_steps=100)
    base.pop(arg, None)
    CASES += _kw(S.OneCycle, arg, values, **base)
for arg, values in [
    ("base_momentum", ["a", NAN]),
    ("max_momentum", [None]),
    ("total_steps", [1, "5"]),
    ("pct_start", ["0.3", 1.5]),
    ("anneal_strategy", ["exp"]),
    ("three_phase", ["no"]),
]:
    base = dict(base_momentum=0.85, max_momentum=0.95, total_steps=100)
    base.pop(arg, None)
    CASES += _kw(
        S.OneCycle.momentum, arg, values, ident=f"momentum.{arg}", **base
    )
CASES += _cases(
    lambda x: S.Join(x, [3]),
    "schedules",
    [S.Constant(1.0), "ab", None, [1.0]],
    "Join.schedules",
)
CASES += _cases(
    lambda x: S.Join([1.0, x], [3]),
    "schedules[1]",
    ["x", None, [2.0], True],
    "Join.schedule",
)
CASES += _cases(
    lambda x: S.Join([1.0, 2.0], x),
    "boundaries",
    [3, "3", None],
    "Join.boundaries",
)
CASES += _cases(
    lambda x: S.Product(x),
    "schedules",
    [S.Linear(0.0, 1.0, 2), 2.0, None, "ab", []],
    "Product",
)
CASES += _cases(
    lambda x: S.Product([S.Constant(1.0), x]),
    "schedules[1]",
    ["2", None, NAN],
    "Product.item",
)
CASES += _cases(
    lambda x: S.Linear(0.0, 1.0, 2) * x, "other", ["2", None, [2.0]], "mul"
)
CASES += _kw(S.Restart, "schedule", ["x", None, [1.0]], period=3)
CASES += _kw(S.Restart, "period", INT_1, schedule=S.Constant(1.0))
CASES += _cases(
    lambda x: S.PerEpoch(x),
    "values",
    [[], {}, "abc", None, 3.0, {-1: 0.1}, {"a": 0.1}, S.BaseValue()],
    "PerEpoch",
)
CASES += _cases(
    lambda x: S.PerEpoch([0.1, x]),
    "values[1]",
    ["0.2", NAN, -INF, None, [0.1]],
    "PerEpoch.item",
)
CASES += _cases(
    lambda x: S.PerEpoch({0: 0.1, 4: x}),
    "values[4]",
    ["0.2", NAN, True],
    "PerEpoch.dict",
)
CASES += _cases(
    lambda x: S.PerEpoch([0.1], none_value=x),
    "none_value",
    ["x", NAN, [1.0]],
    "PerEpoch.none_value",
)
CASES += _cases(
    lambda x: S.PerEpoch([0.1]).value_at(x),
    "epoch",
    [-1, 1.5, "2", None],
    "PerEpoch.value_at",
)
CASES += _cases(
    lambda x: S.PerEpoch(lambda e: x).value_at(2),
    "values(2)",
    ["0.1", [0.1], NAN, True],
    "PerEpoch.callable",
)
CASES += _cases(
    lambda x: S.Constant(1.0)(x),
    "step",
    ["3", None, True, NAN, [1]],
    "Schedule.call",
)
CASES += _cases(
    lambda x: S.BaseValue().evaluate(3, base=x),
    "base",
    ["0.1", NAN, [0.1]],
    "Schedule.base",
)
CASES += _cases(
    lambda x: S.Cyclical(0.1, 0.2, 2, scale_fn=lambda c: x)(3),
    "scale_fn(",
    ["x", NAN, [1.0]],
    "Cyclical.scale_fn_result",
)

# -- callbacks ----------------------------------------------------------------

HS = C.HyperparameterScheduler
CASES += _cases(
    lambda x: HS(x),
    "schedules",
    [None, {}, [("lr", 0.1)], "lr"],
    "HS.schedules",
)
CASES += _cases(
    lambda x: HS({x: 0.1}), "schedules", ["foo", 3, "dropout:"], "HS.target"
)
for target, values in [
    ("learning_rate", [-0.1, NAN, INF, "0.1", [0.1], None]),
    ("lr", [-1, -INF]),
    ("momentum", [-0.5, 1.0, 1.5, np.float32(2.0)]),
    ("beta_1", [1.0, -0.1]),
    ("beta_2", [1.0, 2]),
    ("weight_decay", [-1e-4, INF]),
    ("gradient_clip", [-1.0, 0, 0.0, -INF, NAN]),
    ("dropout", [1.5, 1.0, -0.1]),
    ("dropout:d1", [1.0, 2.0]),
    ("spec.probability", [1.5, -0.5]),
    ("spec.num_time_masks", [-1, NAN]),
]:
    CASES += _cases(
        lambda x, t=target: HS({t: x}),
        f"schedules[{target!r}]",
        values,
        f"HS.{target}",
    )
CASES += _cases(
    lambda x: HS({"lr": S.PerEpoch([0.1, x])}),
    "schedules['lr'].values[1]",
    [-0.1, INF],
    "HS.per_epoch_list",
)
CASES += _cases(
    lambda x: HS(
        {"momentum": S.PerEpoch({0: 0.9, 3: x}) * S.Linear(0.0, 1.0, 5)}
    ),
    "schedules['momentum'].values[3]",
    [1.0, -0.2],
    "HS.per_epoch_dict",
)
CASES += _kw(HS, "origin", CHOICE, schedules={"lr": 0.1})
CASES += _kw(HS, "verbose", ["1", -1, 1.5, None], schedules={"lr": 0.1})

GC = C.GradientClipScheduler
CASES += _cases(
    lambda x: GC(x),
    "schedule",
    [-1.0, 0, 0.0, NAN, -INF, True, "10", None, np.float64(-2)],
    "GC.number",
)
CASES += _cases(
    lambda x: GC([1.0, x]), "schedule[1]", [-1.0, 0.0, "1"], "GC.list"
)
CASES += _cases(
    lambda x: GC({0: 10.0, 5: x}), "schedule[5]", [-1.0, 0, NAN, "x"], "GC.dict"
)
CASES += _cases(
    lambda x: GC({x: 10.0}), "schedule", [-1, "a", 1.5], "GC.dict_key"
)
CASES += _cases(
    lambda x: GC(lambda e: x).schedule.value_at(1),
    "schedule(1)",
    [-1.0, 0.0, "x"],
    "GC.callable",
)
CASES += _kw(GC, "mode", ["l1", None, 2], schedule={0: 1.0})
CASES += _kw(GC, "verbose", [-1, "0"], schedule={0: 1.0})

DS = C.DropoutScheduler
CASES += _cases(
    lambda x: DS(x),
    "schedule",
    [1.5, 1.0, -0.1, NAN, "half", None, True, np.float32(1.2)],
    "DS.number",
)
CASES += _cases(
    lambda x: DS([0.0, x]), "schedule[1]", [1.0, -0.5, "0.1"], "DS.list"
)
CASES += _cases(
    lambda x: DS({0: 0.0, 3: x}),
    "schedule[3]",
    [1.5, 1.0, None, NAN],
    "DS.dict",
)
CASES += _cases(
    lambda x: DS(lambda e: x).schedule.value_at(0),
    "schedule(0)",
    [1.5, -0.1, "0.5"],
    "DS.callable",
)
CASES += _kw(DS, "layers", ["d1", 3, [3], [""], []], schedule={0: 0.1})

CASES += _cases(
    lambda x: C.PerEpochLR(x),
    "learning_rates",
    [[], {}, "abc", None, 0.1, {-2: 0.1}],
    "PerEpochLR",
)
CASES += _cases(
    lambda x: C.PerEpochLR([1e-3, x]),
    "learning_rates[1]",
    [-1e-3, NAN, INF, "1e-3", None],
    "PerEpochLR.list",
)
CASES += _cases(
    lambda x: C.PerEpochLR({0: 1e-3, 5: x}),
    "learning_rates[5]",
    [-1.0, "x"],
    "PerEpochLR.dict",
)
CASES += _cases(
    lambda x: C.PerEpochLR(lambda e: x).schedules["learning_rate"].value_at(3),
    "learning_rates(3)",
    [-1.0, "x", NAN],
    "PerEpochLR.callable",
)
CASES += _kw(C.PerEpochLR, "step_shape", ["x", [1.0]], learning_rates=[0.1])

for arg, values in [
    ("base_lr", [-1e-3, NAN, "0.1", None]),
    ("max_lr", [1e-4, INF, "x"]),
    ("step_size_up", [0, -1, "x"]),
    ("mode", CHOICE),
    ("gamma", [0.0, "x"]),
    ("scale_fn", [3]),
    ("cycle_momentum", BOOL),
    ("base_momentum", [-0.1, 1.0, "x"]),
    ("max_momentum", [1.0, 1.5, 0.5]),
]:
    base = dict(base_lr=1e-3, max_lr=1e-2)
    base.pop(arg, None)
    CASES += _kw(C.CyclicLR, arg, values, **base)
for arg, values in [
    ("max_lr", POSITIVE),
    ("total_steps", [1, "10", 2.5]),
    ("epochs", [0, "3"]),
    ("steps_per_epoch", [0, 1.5]),
    ("pct_start", [0.0, 1.0, "0.3"]),
    ("anneal_strategy", CHOICE),
    ("cycle_momentum", BOOL),
    ("base_momentum", [1.0, -0.5]),
    ("max_momentum", [1.0, 0.5]),
    ("div_factor", [0, -1.0]),
    ("final_div_factor", [NAN]),
    ("three_phase", [1]),
    ("verbose", [-1]),
]:
    base = dict(max_lr=0.1)
    base.pop(arg, None)
    CASES += _kw(C.OneCycleLR, arg, values, **base)
for arg, values in [
    ("peak_lr", POSITIVE),
    ("warmup_steps", [-1, 1.5, "10", None, NAN]),
    ("decay", CHOICE),
    ("total_steps", [0, "100"]),
    ("final_lr", [-1e-3, NAN]),
    ("warmup", CHOICE),
    ("initial_lr", [-1.0, "0"]),
    ("decay_steps", [0, 2.5]),
    ("decay_rate", [0.0, -0.5, "x"]),
    ("verbose", ["x"]),
]:
    base = dict(peak_lr=1e-3)
    base.pop(arg, None)
    CASES += _kw(C.WarmupDecayLR, arg, values, **base)
CASES += _kw(
    C.WarmupDecayLR.transformer,
    "d_model",
    [0, "512", None],
    ident="transformer.d_model",
)
CASES += _kw(
    C.WarmupDecayLR.transformer,
    "warmup_steps",
    [1, "x"],
    ident="transformer.warmup_steps",
    d_model=512,
)
CASES += _kw(
    C.WarmupDecayLR.transformer,
    "scale",
    [0.0, NAN],
    ident="transformer.scale",
    d_model=512,
)

NB = C.NewbobLRControl
for arg, values in [
    ("control", CHOICE),
    ("monitor", ["", 3, None]),
    ("mode", CHOICE),
    ("initial_lr", [-1.0, "1", NAN]),
    ("learning_rates", ["abc", [], 0.1]),
    ("decay", [0.0, -0.5, "half", None]),
    ("growth", [0, "x"]),
    ("relative_error_threshold", [NAN, "x", None]),
    ("error_threshold", [INF]),
    ("relative_error_grow_threshold", ["x"]),
    ("multi_num_epochs", [0, 1.5]),
    ("multi_update_interval", [0, "2"]),
    ("relative_error_relative_lr", BOOL),
    ("relative_error_div_by_old", ["no"]),
    ("min_num_epochs_per_new_lr", [-1, "1"]),
    ("min_lr", [-1e-3, NAN]),
    ("state_file", [3, b"x"]),
    ("restore_best_weights", [1]),
    ("step_shape", ["x"]),
    ("verbose", [-1]),
]:
    CASES += _kw(NB, arg, values)
CASES += _cases(
    lambda x: NB(learning_rates=[1e-3, x]),
    "learning_rates[1]",
    [-1.0, "x", INF],
    "NB.learning_rates.item",
)
CASES += _cases(
    lambda x: NB(learning_rates={0: 1e-3, 2: x}),
    "learning_rates[2]",
    [-1.0],
    "NB.learning_rates.dict",
)
CASES += _cases(
    lambda x: NB(learning_rates={x: 1e-3}),
    "learning_rates",
    [-1, 1.5],
    "NB.learning_rates.key",
)
for key, values in [
    ("learning_rate_control", ["newbob_fast", 3]),
    ("learning_rate", ["1", -1.0, NAN]),
    ("learning_rates", ["__import__('os')", {0: 1e-3}, "[1e-3"]),
    ("learning_rate_decay", [0.0, "x"]),
    ("newbob_learning_rate_decay", [-1.0]),
    ("newbob_learning_rate_growth", ["x"]),
    ("newbob_relative_error_threshold", [NAN]),
    ("newbob_multi_num_epochs", [0]),
    ("newbob_multi_update_interval", [0]),
    ("learning_rate_control_relative_error_relative_lr", ["maybe", 2]),
    ("newbob_relative_error_div_by_old", [0.5]),
    ("learning_rate_control_min_num_epochs_per_new_lr", [-1]),
    ("min_learning_rate", [-1.0]),
    ("learning_rate_file", [3]),
    ("learning_rate_control_error_measure", [3, [1]]),
]:
    CASES += _cases(
        lambda x, k=key: NB.from_returnn_config({k: x}),
        key.split("[")[0] if key != "learning_rates" else "learning_rates",
        values,
        f"returnn.{key}",
    )
CASES += _cases(
    lambda x: NB.from_returnn_config({"learning_rates": [1, x]}),
    "learning_rates[1]",
    [-1.0, "x"],
    "returnn.learning_rates.item",
)
CASES += _cases(
    lambda x: NB.from_returnn_config(x),
    "config",
    [None, [("learning_rate", 1.0)], "x"],
    "returnn.config",
)

LF = C.LRFinder
for arg, values in [
    ("start_lr", POSITIVE),
    ("end_lr", [1e-8, "x"]),
    ("num_steps", [1, "100", 2.5]),
    ("mode", CHOICE),
    ("smoothing", [1.0, -0.1, 1.5, "x"]),
    ("divergence_threshold", [1.0, 0.5, "x"]),
    ("restore", [1]),
    ("verbose", [-1, "x"]),
]:
    CASES += _kw(LF, arg, values)

# -- find_lr, LRFinderResult, Knob, plotting ----------------------------------

CASES += _cases(
    lambda x: ktp.find_lr(x, np.zeros((4, 2)), np.zeros((4, 1))),
    "model",
    [None, "model"],
    "find_lr.model",
)
for arg, values in [
    ("batch_size", [0, "8", 2.5]),
    ("start_lr", [0.0, "x"]),
    ("end_lr", [-1.0]),
    ("num_steps", [1]),
    ("mode", ["cubic"]),
    ("smoothing", [1.0]),
    ("divergence_threshold", [1.0]),
    ("verbose", ["loud", 3]),
    ("steps_per_epoch", [0, "2"]),
    ("callbacks", ["cb", 3]),
]:
    CASES += _cases(
        lambda x, a=arg: ktp.find_lr(
            _model(), np.zeros((4, 2)), np.zeros((4, 1)), **{a: x}
        ),
        arg,
        values,
        f"find_lr.{arg}",
    )

R = ktp.LRFinderResult
CASES += _cases(
    lambda x: R(x, [1.0, 2.0]),
    "lrs",
    ["ab", None, 3.0, [[1e-3, 1e-2]], [0.0, 1e-2], [-1.0, 1.0], [NAN, 1.0]],
    "R.lrs",
)
CASES += _cases(
    lambda x: R([1e-3, 1e-2], x),
    "losses",
    ["ab", None, [1.0], [[1.0, 2.0]], ["a", "b"]],
    "R.losses",
)
for arg, values in [
    ("smoothing", [1.5, 1.0, -0.1, "x", NAN]),
    ("stop_reason", [None, 3, ""]),
    ("start_lr", [0.0, "x"]),
    ("end_lr", [-1.0]),
    ("num_steps", [0, 1.5]),
    ("mode", ["cubic", None]),
]:
    CASES += _kw(
        R, arg, values, ident=f"R.{arg}", lrs=[1e-3, 1e-2], losses=[1.0, 2.0]
    )
CASES += _cases(
    lambda x: _result().suggestion(x),
    "method",
    ["best", None, 0, ["valley"]],
    "R.suggestion",
)
CASES += _cases(lambda x: _result().plot(x), "path", [3, [1]], "R.plot")

CASES += _kw(ktp.Knob, "value", ["0.5", None, True, NAN, INF, [0.5]])
CASES += _kw(ktp.Knob, "dtype", ["int32", "bool", "foo", 3, "uint8"])
CASES += _kw(ktp.Knob, "name", [3, "", None])
CASES += _kw(ktp.Knob, "allow_infinite", [1, "yes"])
CASES += _kw(ktp.Knob, "variable", [1.0, "x", np.zeros(3)])
CASES += _cases(
    lambda x: ktp.Knob(0.5).assign(x),
    "value",
    ["0.5", NAN, -INF, None],
    "Knob.assign",
)

CASES += _cases(
    lambda x: ktp.plot_schedule(S.Constant(1.0), x),
    "steps",
    [0, -5, 2.5, "10", None, True],
    "plot_schedule.steps",
)
CASES += _cases(
    lambda x: ktp.plot_schedule(x, 10),
    "schedule",
    ["abc", [1.0], None],
    "plot_schedule.schedule",
)
CASES += _cases(
    lambda x: ktp.plot_schedule(None, 10, momentum=x),
    "momentum",
    ["x", [0.9]],
    "plot_schedule.named",
)
CASES += _cases(
    lambda x: ktp.plot_schedule(lambda s: x, 3),
    "schedule(0)",
    ["x", [1.0]],
    "plot_schedule.callable",
)
CASES += _cases(
    lambda x: ktp.plot_schedule(S.Constant(1.0), 3, log_scale=x),
    "log_scale",
    [1, "yes"],
    "plot_schedule.log_scale",
)
CASES += _cases(
    lambda x: ktp.plot_schedule(S.Constant(1.0), 3, title=x),
    "title",
    [3, ["t"]],
    "plot_schedule.title",
)
CASES += _cases(
    lambda x: ktp.plot_schedule(S.Constant(1.0), 3, path=x),
    "path",
    [3],
    "plot_schedule.path",
)
CASES += _cases(
    lambda x: ktp.plot_history(x),
    "history",
    [None, {}, [1.0], "loss"],
    "plot_history.history",
)
CASES += _cases(
    lambda x: ktp.plot_history({"loss": x}),
    "history['loss']",
    [["a", "b"], "abc", [[1.0, 2.0], [3.0]]],
    "plot_history.values",
)
CASES += _cases(
    lambda x: ktp.plot_history({"loss": [1.0]}, keys=x),
    "keys",
    ["loss", [3], []],
    "plot_history.keys",
)
CASES += _cases(
    lambda x: ktp.plot_history({"loss": [1.0]}, title=x),
    "title",
    [3],
    "plot_history.title",
)

# -- layers -------------------------------------------------------------------

CASES += _cases(
    lambda x: L.ScheduledDropout(x),
    "rate",
    ["abc", None, True, NAN, 1.5, -0.1, [0.5]],
    "ScheduledDropout",
)
CASES += _cases(
    lambda x: L.ScheduledDropout(0.5).set_rate(x),
    "rate",
    ["0.1", 2.0],
    "ScheduledDropout.set_rate",
)
CASES += _kw(L.Cutout, "size", [-1, -0.5, 1.5, "16", None, True, NAN])
for arg, values in [
    ("probability", [1.5, -0.1, "x"]),
    ("num_holes", [0, 1.5]),
    ("fill_value", [NAN, "0"]),
    ("data_format", ["nhwc", 3]),
    ("seed", ["1", 1.5]),
]:
    CASES += _kw(L.Cutout, arg, values, size=8)
for arg, values in [
    ("alpha", [-0.1, NAN, "x", None]),
    ("per_example", [1, "yes"]),
    ("probability", [2.0, -1.0]),
    ("seed", [1.5]),
]:
    CASES += _kw(L.MixUp, arg, values)
for arg, values in [
    ("alpha", [-1.0, INF]),
    ("probability", [1.01]),
    ("per_example", [None]),
    ("data_format", ["x"]),
]:
    CASES += _kw(L.CutMix, arg, values)
for arg, values in [
    ("freq_mask_param", [-1, 2.5, "27"]),
    ("time_mask_param", [-5]),
    ("num_freq_masks", [-1, None]),
    ("num_time_masks", [1.5]),
    ("time_mask_ratio", [1.5, -0.1]),
    ("policy", ["XX", 3]),
    ("adaptive_time_mask_count", [0.0, 1.5]),
    ("adaptive_time_mask_width", [-0.5, "x"]),
    ("probability", [2.0]),
    ("fill", ["median"]),
    ("fill_value", [INF]),
]:
    CASES += _kw(L.SpecAugment, arg, values)
CASES += _cases(
    lambda x: L.MixUp().set_knob("alpha", x),
    "alpha",
    [-1.0, "x", NAN],
    "set_knob.value",
)
CASES += _cases(
    lambda x: L.MixUp().set_knob(x, 0.5),
    "name",
    ["beta", 3, ["alpha"]],
    "set_knob.name",
)
CASES += _cases(
    lambda x: L.mix_targets(x), "model", [None, "model", [1]], "mix_targets"
)

# -- tuner, distribute --------------------------------------------------------

T = ktp.tuner
CASES += _cases(
    lambda x: T.one_cycle_lr(FakeHP(), max_lr=x),
    "max_lr",
    [0.0, -1.0, "x", (1.0, 0.1), (1e-3, 1.0, 2.0), None],
    "tuner.one_cycle.max_lr",
)
CASES += _cases(
    lambda x: T.one_cycle_lr(FakeHP(), max_lr=(x, 1.0)),
    "max_lr[0]",
    [0.0, "x"],
    "tuner.one_cycle.low",
)
CASES += _cases(
    lambda x: T.one_cycle_lr(FakeHP(), pct_start=x),
    "pct_start",
    [0.0, 1.0, (0.5, 0.1)],
    "tuner.one_cycle.pct_start",
)
CASES += _cases(
    lambda x: T.one_cycle_lr(FakeHP(), pct_start=(0.1, x)),
    "pct_start[1]",
    [1.5, "x"],
    "tuner.one_cycle.pct_high",
)
CASES += _cases(
    lambda x: T.one_cycle_lr(x), "hp", [None, {}], "tuner.one_cycle.hp"
)
CASES += _cases(
    lambda x: T.one_cycle_lr(FakeHP(), prefix=x),
    "prefix",
    [None, 3, ""],
    "tuner.one_cycle.prefix",
)
CASES += _cases(
    lambda x: T.cyclic_lr(FakeHP(), base_lr=x),
    "base_lr",
    [0.0, "x"],
    "tuner.cyclic.base_lr",
)
CASES += _cases(
    lambda x: T.cyclic_lr(FakeHP(), step_size_up=x),
    "step_size_up",
    [0, 2.5, (10, 5)],
    "tuner.cyclic.step",
)
CASES += _cases(
    lambda x: T.cyclic_lr(FakeHP(), mode=x),
    "mode",
    ["sine", 3, ()],
    "tuner.cyclic.mode",
)
CASES += _cases(
    lambda x: T.cyclic_lr(FakeHP(), mode=("triangular", x)),
    "mode[1]",
    ["sine"],
    "tuner.cyclic.modes",
)
CASES += _cases(
    lambda x: T.newbob(FakeHP(), decay=x),
    "decay",
    [0.0, (0.5, 0.3), "x"],
    "tuner.newbob.decay",
)
CASES += _cases(
    lambda x: T.newbob(FakeHP(), relative_error_threshold=x),
    "relative_error_threshold",
    [NAN, "x"],
    "tuner.newbob.threshold",
)
CASES += _cases(
    lambda x: T.dropout_scheduler(FakeHP(), rate=x),
    "rate",
    [1.0, -0.1, (0.3, 0.1), "x"],
    "tuner.dropout.rate",
)
CASES += _cases(
    lambda x: T.dropout_scheduler(FakeHP(), start_epoch=x),
    "start_epoch",
    [-1, 1.5, (3, 1)],
    "tuner.dropout.start",
)
CASES += _cases(
    lambda x: T.lr_search_range(_result(), factor=x),
    "factor",
    [1.0, 0.5, "x", NAN],
    "tuner.lr_search_range.factor",
)
CASES += _cases(
    lambda x: T.lr_search_range(_result(), method=x),
    "method",
    ["best"],
    "tuner.lr_search_range.method",
)
CASES += _cases(
    lambda x: T.lr_search_range(x),
    "result",
    [None, [1e-3]],
    "tuner.lr_search_range.result",
)

D = ktp.distribute
CASES += _cases(
    lambda x: D.launch_local_workers(x),
    "command",
    [None, [], 3, [3], ""],
    "workers.command",
)
CASES += _cases(
    lambda x: D.launch_local_workers(["true"], num_workers=x),
    "num_workers",
    [0, True, 1.5, "2", None],
    "workers.num",
)
CASES += _cases(
    lambda x: D.launch_local_workers(["true"], env=x),
    "env",
    [["A=1"], {"A": 1}, "A=1"],
    "workers.env",
)
CASES += _cases(
    lambda x: D.launch_local_workers(["true"], timeout=x),
    "timeout",
    [0, -1.0, "60"],
    "workers.timeout",
)
CASES += _cases(
    lambda x: D.launch_local_workers(["true"], cwd=x),
    "cwd",
    [3, "/no/such/directory/anywhere"],
    "workers.cwd",
)
CASES += _cases(
    lambda x: D.free_ports(x), "count", [-1, "2", 1.5, None], "free_ports"
)


def _shown(value):
    """How the message shows the value received."""
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    return repr(value)


@pytest.mark.parametrize("make,argument,value", CASES)
def test_bad_input_is_rejected_clearly(make, argument, value):
    with pytest.raises((ValueError, TypeError)) as info:
        make(value)
    message = str(info.value)
    assert f"`{argument}" in message, message
    assert _shown(value) in message or (
        isinstance(value, np.generic) and str(value) in message
    ), message


def test_the_corpus_is_large():
    assert len(CASES) >= 250


def test_type_errors_are_also_value_errors():
    with pytest.raises(TypeError):
        S.Constant("1")
    with pytest.raises(ValueError):
        S.Constant("1")


# -- target_value -------------------------------------------------------------


@pytest.mark.parametrize(
    "target,value",
    [
        ("learning_rate", 0.0),
        ("lr", np.float32(1e-3)),
        ("momentum", 0.0),
        ("momentum", 0.99),
        ("beta_2", np.float64(0.999)),
        ("weight_decay", 0),
        ("gradient_clip", INF),
        ("gradient_clip", 1e-6),
        ("dropout", 0.0),
        ("dropout:d1", 0.5),
        ("spec.num_time_masks", 10),
        ("mix.probability", 1.0),
        ("new_target", -3.0),
        ("lr", np.array(0.1)),
    ],
)
def test_target_value_accepts_valid_values(target, value):
    assert _validation.target_value(target, value, "x") == float(value)


def test_target_value_clip_none_means_off():
    assert _validation.target_value("gradient_clip", None, "x") == INF


# -- good forms still construct ------------------------------------------------


def test_good_forms_construct():
    C.GradientClipScheduler(INF)
    C.GradientClipScheduler(np.float32(5.0))
    C.GradientClipScheduler({0: 10.0, 5: None, 7: INF})
    C.GradientClipScheduler([1.0, 2.0])
    assert C.GradientClipScheduler(lambda e: None).schedule.value_at(0) == INF
    C.DropoutScheduler(0.0)
    C.DropoutScheduler(np.float64(0.3))
    C.DropoutScheduler({0: 0.0, 3: np.float32(0.3)}, layers=("d1",))
    C.DropoutScheduler(S.Linear(0.0, 0.5, 100))
    C.PerEpochLR((1e-3, np.float32(5e-4), 1))
    C.PerEpochLR({0: 1e-3, np.int64(3): 0})
    C.HyperparameterScheduler(
        {
            "lr": np.float32(0.1),
            "momentum": S.PerEpoch([0.9, 0.95]),
            "beta_2": 0.999,
            "weight_decay": 0,
            "gradient_clip": INF,
            "dropout:d1": S.PerEpoch({0: 0.1}) * S.Linear(1.0, 0.5, 10),
            "spec.num_time_masks": S.Linear(0, 2, 20),
        }
    )
    C.CyclicLR(np.float32(1e-3), 1e-2, base_momentum=0.0)
    C.OneCycleLR(np.float64(0.1), total_steps=np.int64(100))
    C.WarmupDecayLR(1e-3, warmup_steps=np.float32(0.1), decay="linear")
    C.WarmupDecayLR(1e-3, warmup_steps=10.0)
    C.NewbobLRControl(
        initial_lr=np.float32(1e-3),
        decay=np.float64(0.5),
        learning_rates={"2": 1e-3},
    )
    cb = C.NewbobLRControl.from_returnn_config(
        {
            "learning_rate": np.float32(1e-3),
            "learning_rate_control_relative_error_relative_lr": True,
            "newbob_relative_error_div_by_old": 0,
        }
    )
    assert cb.relative_error_relative_lr and not cb.relative_error_div_by_old
    C.LRFinder(np.float32(1e-6), 1, num_steps=np.int64(10), smoothing=0)
    ktp.LRFinderResult([], [])
    ktp.LRFinderResult(np.geomspace(1e-3, 1, 3), [1.0, NAN, INF], smoothing=0)
    ktp.Knob(np.float32(0.5), dtype="float64")
    ktp.Knob(INF, allow_infinite=True)
    L.Cutout(np.float32(0.25))
    L.Cutout(np.int64(8))
    L.ScheduledDropout(np.float32(0.5))
    L.MixUp(alpha=0)
    L.SpecAugment(policy="LD")
    S.Linear(np.int64(0), np.float32(1.0), np.float64(4.0))
    S.PiecewiseConstant(np.array([5, 10]), (1.0, 0.5, 0.1))
    S.PiecewiseConstant.from_dict({0: 1.0, np.int64(5): 0.5})
    S.Join((0.0, S.Constant(1.0)), range(3, 4))
    S.Product((S.Constant(2.0), 0.5))
    assert float(S.Constant(1.0)(np.int64(3))) == 1.0
    assert float(S.Constant(1.0)(keras.ops.convert_to_tensor(3))) == 1.0
    T.one_cycle_lr(FakeHP(), max_lr=0.1, pct_start=(0.2, 0.4))
    T.dropout_scheduler(FakeHP(), rate=0.0, start_epoch=0)


def test_newbob_zero_learning_rate_with_relative_lr():
    from keras_trainplus.callbacks.newbob import _protocol as _newbob

    for initial in (0.0, 1.0):
        c = _newbob.NewbobController(
            "newbob_rel",
            initial,
            relative_lr=True,
            error_key="val_loss",
            learning_rates={2: 0.0},
        )
        for n, score in [(1, 1.0), (2, 2.0), (3, 1.5)]:
            c.lr_for_epoch(n)
            c.set_scores(n, {"val_loss": score})
        assert math.isfinite(c.lr_for_epoch(4))


@pytest.mark.parametrize(
    "value", ["abc", [1.0, 2.0], np.zeros(2), None, {"a": 1}]
)
def test_newbob_non_scalar_monitored_value(value):
    cb = C.NewbobLRControl(monitor="my_metric", initial_lr=0.1)
    cb.set_model(_model())
    cb.on_epoch_begin(0)
    with pytest.raises(ValueError, match="'my_metric'") as info:
        cb.on_epoch_end(0, {"my_metric": value})
    assert "my_metric" in str(info.value)


def test_newbob_callable_decay_checked_when_first_used():
    cb = C.NewbobLRControl(monitor="loss", initial_lr=0.1, decay=lambda lr: -lr)
    cb.set_model(_model())
    for epoch, loss in [(0, 1.0), (1, 2.0)]:
        cb.on_epoch_begin(epoch)
        cb.on_epoch_end(epoch, {"loss": loss})
    with pytest.raises(ValueError, match=r"`decay\(0\.1\)`.*-0\.1"):
        cb.on_epoch_begin(2)


def test_callable_checked_at_the_first_epoch_of_fit():
    model = _model()
    with pytest.raises(ValueError, match=r"`learning_rates\(0\)`"):
        model.fit(
            np.zeros((4, 2)),
            np.zeros((4, 1)),
            epochs=1,
            verbose=0,
            callbacks=[C.PerEpochLR(lambda epoch: -1.0)],
        )
