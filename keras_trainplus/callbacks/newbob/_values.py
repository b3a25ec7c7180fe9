"""Value checks shared by `NewbobLRControl` and its RETURNN config import:
numbers from NumPy/tensors, decay factors, predefined learning rates."""

import ast

import keras
import numpy as np

from keras_trainplus import _export
from keras_trainplus import _validation as v


def as_float(x):
    """Coerces numpy scalars, 0-d arrays, scalar tensors and ints to float
    (None, and what is no number, pass unchanged for the checks to
    report)."""
    if x is None or isinstance(x, bool):
        return x
    if isinstance(x, (int, float, np.integer, np.floating)):
        return float(x)
    if keras.ops.is_tensor(x) or hasattr(x, "numpy"):
        x = np.asarray(keras.ops.convert_to_numpy(x))
    if (
        isinstance(x, np.ndarray)
        and x.shape == ()
        and (
            np.issubdtype(x.dtype, np.integer)
            or np.issubdtype(x.dtype, np.floating)
        )
    ):
        return float(x)
    return x


def plain(x):
    """JSON-able copy of a RETURNN config value."""
    if isinstance(x, dict):
        return {str(k): plain(val) for k, val in x.items()}
    if isinstance(x, (list, tuple)):
        return [plain(i) for i in x]
    return as_float(x)


def factor(name, value):
    if callable(value):
        return value
    value = as_float(value)
    return v.positive(name, value)


def serialize_factor(name, value):
    if callable(value):
        return _export.serialize_callable(name, value)
    return value


def returnn_bool(key, value):
    """A RETURNN boolean: a bool, 0/1, or "true"/"false" (RETURNN's
    `Config.bool` accepts these)."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    v.fail_type(key, value, 'a bool (or 0/1, "true"/"false")')


def returnn_lrs(value):
    """RETURNN `learning_rates`: list, dict or a *string literal* (RETURNN
    `eval`s strings; here only literals are accepted)."""
    if isinstance(value, str):
        try:
            value = ast.literal_eval(value)
        except (
            ValueError,
            SyntaxError,
            TypeError,
            MemoryError,
            RecursionError,
        ):
            v.fail(
                "learning_rates",
                value,
                "a list or dict literal when given as a string",
            )
    return value


def predefined(value, offset):
    """{epoch (1-based): lr} from a list (epochs 1..) or a dict whose keys
    are 0-based Keras epochs (`offset=0`) or 1-based RETURNN ones (1)."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        if not value:
            v.fail("learning_rates", value, "a non-empty list")
        return {
            i + 1: v.target_value(
                "learning_rate", as_float(lr), f"learning_rates[{i}]"
            )
            for i, lr in enumerate(value)
        }
    if isinstance(value, dict):
        expected = f"a non-empty dict {{epoch: lr}} with int epochs >= {offset}"
        if not value:
            v.fail("learning_rates", value, expected)
        out = {}
        for key, lr in value.items():
            if isinstance(key, str) and key.lstrip("-").isdigit():
                key = int(key)  # JSON object keys are strings
            if not v.is_integer(as_float(key), offset):
                v.fail("learning_rates", value, expected)
            out[int(key) + 1 - offset] = v.target_value(
                "learning_rate", as_float(lr), f"learning_rates[{key!r}]"
            )
        return out
    v.fail_type("learning_rates", value, "a list or a dict {epoch: lr}")
