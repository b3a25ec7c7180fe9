"""CyclicLR / OneCycleLR reproduce torch's reference sequences through a real,
compiled `fit`, with steps_per_execution 1 and 8.

The probe model's update i touches only weight i with gradient 1, so after a
run with plain SGD the weights are exactly minus the learning rates every
compiled update used. Momentum is checked by running the case's own
optimizer kind (SGD momentum or Adam beta_1) and comparing the final weights
with a float64 simulation driven by the reference LR and momentum sequences.
"""

import ast
import math

import keras
import numpy as np
import pytest
from helpers import fit_probe
from helpers import probe_model
from helpers import reference_cases
from helpers import relative_error
from helpers import sgd_applied_lrs
from helpers import simulate_adam
from helpers import simulate_sgd
from helpers import spe_values

from keras_trainplus import callbacks as C

CASES = reference_cases()
_ALLOWED = (
    ast.Expression,
    ast.BinOp,
    ast.UnaryOp,
    ast.Constant,
    ast.Name,
    ast.Load,
    ast.Attribute,
    ast.Call,
    ast.Add,
    ast.Sub,
    ast.Mult,
    ast.Div,
    ast.Pow,
    ast.USub,
    ast.UAdd,
    ast.Mod,
    ast.FloorDiv,
)


def scale_fn_from_expr(expr):
    """Builds `lambda x: <expr>` from the reference file without `eval`ing
    arbitrary code (arithmetic, `x` and `math.*` only)."""
    tree = ast.parse(expr, mode="eval")
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED):
            raise ValueError(f"unsupported scale_fn expression: {expr}")
        if isinstance(node, ast.Name) and node.id not in ("x", "math"):
            raise ValueError(f"unsupported name in scale_fn: {node.id}")
    code = compile(tree, "<scale_fn>", "eval")
    return lambda x: eval(code, {"__builtins__": {}, "math": math}, {"x": x})


def make_callback(case, cycle_momentum=None):
    kwargs = dict(case["scheduler_kwargs"])
    if case.get("scale_fn"):
        kwargs["scale_fn"] = scale_fn_from_expr(case["scale_fn"]["expr"])
    if cycle_momentum is not None:
        kwargs["cycle_momentum"] = cycle_momentum
    cls = C.OneCycleLR if case["scheduler"] == "OneCycleLR" else C.CyclicLR
    return cls(**kwargs)


def case_optimizer(case):
    kw = case["optimizer_kwargs"]
    lr = float(kw.get("lr", 0.1))
    if case["optimizer"] == "SGD":
        return keras.optimizers.SGD(
            lr,
            momentum=float(kw.get("momentum", 0)),
            nesterov=bool(kw.get("nesterov", False)),
        )
    cls = {"Adam": keras.optimizers.Adam, "AdamW": keras.optimizers.AdamW}[
        case["optimizer"]
    ]
    beta_1, beta_2 = kw.get("betas", (0.9, 0.999))
    extra = {}
    if case["optimizer"] == "AdamW":
        # Weight decay would couple weights to the LR; the probe isolates LR.
        extra["weight_decay"] = None
    return cls(
        lr,
        beta_1=beta_1,
        beta_2=beta_2,
        epsilon=float(kw.get("eps", 1e-7)),
        **extra,
    )


def run_epochs(n, spe):
    per_epoch = n // 2
    return 2 if n % 2 == 0 and per_epoch % spe == 0 else 1


@pytest.mark.parametrize("spe", spe_values())
@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_learning_rate_sequence_in_compiled_fit(case, spe):
    n = case["num_steps"]
    model = probe_model(n, keras.optimizers.SGD(0.5), steps_per_execution=spe)
    epochs = run_epochs(n, spe)
    history = fit_probe(
        model, n, [make_callback(case, cycle_momentum=False)], epochs=epochs
    )
    ref = np.asarray(case["lr"])
    assert relative_error(sgd_applied_lrs(model), ref) < 1e-5
    # logs: the value used by each epoch's last update, as Python floats.
    logged = history.history["learning_rate"]
    assert all(isinstance(x, float) for x in logged)
    last = [(e + 1) * (n // epochs) - 1 for e in range(epochs)]
    np.testing.assert_allclose(logged, ref[last], rtol=1e-9)


MOMENTUM_CASES = [c for c in CASES if c["momentum_kind"]]


@pytest.mark.parametrize("spe", spe_values())
@pytest.mark.parametrize(
    "case", MOMENTUM_CASES, ids=[c["id"] for c in MOMENTUM_CASES]
)
def test_momentum_sequence_in_compiled_fit(case, spe):
    n = case["num_steps"]
    opt = case_optimizer(case)
    model = probe_model(n, opt, steps_per_execution=spe)
    history = fit_probe(model, n, [make_callback(case)])
    lrs, moms = np.asarray(case["lr"]), np.asarray(case["momentum"])
    if isinstance(opt, keras.optimizers.SGD):
        expected = simulate_sgd(lrs, moms, nesterov=opt.nesterov)
        constant = simulate_sgd(lrs, np.full(n, opt.momentum))
    else:
        expected = simulate_adam(
            lrs, moms, beta_2=opt.beta_2, epsilon=opt.epsilon
        )
        constant = simulate_adam(
            lrs, np.full(n, opt.beta_1), beta_2=opt.beta_2, epsilon=opt.epsilon
        )
    got = -(
        -np.asarray(keras.ops.convert_to_numpy(model.layers[-1].kernel))[:, 0]
    )
    assert relative_error(got, expected) < 2e-5
    # The check can fail: a momentum that never changed is far off.
    assert relative_error(constant, expected) > 1e-3
    assert history.history["momentum"][-1] == pytest.approx(moms[-1])
