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


def config_of(self):
    """`NewbobLRControl.get_config`: a RETURNN config round-trips as one."""
    common = {
        "restore_best_weights": self.restore_best_weights,
        "step_shape": (
            None
            if self.step_shape is None
            else _export.serialize(self.step_shape)
        ),
        "verbose": self.verbose,
    }
    if self._returnn_config is not None:
        return {"returnn_config": dict(self._returnn_config), **common}
    config = {
        "control": self.control,
        "monitor": self.monitor,
        "mode": self.mode,
        "initial_lr": self.initial_lr,
        "learning_rates": (
            None
            if self.learning_rates is None
            else [[n - 1, lr] for n, lr in sorted(self.learning_rates.items())]
        ),
        "decay": serialize_factor("decay", self.decay),
        "growth": serialize_factor("growth", self.growth),
        "relative_error_threshold": self.relative_error_threshold,
        "error_threshold": self.error_threshold,
        "relative_error_grow_threshold": self.relative_error_grow_threshold,
        "multi_num_epochs": self.multi_num_epochs,
        "multi_update_interval": self.multi_update_interval,
        "relative_error_relative_lr": self.relative_error_relative_lr,
        "relative_error_div_by_old": self.relative_error_div_by_old,
        "min_num_epochs_per_new_lr": self.min_num_epochs_per_new_lr,
        "min_lr": self.min_lr,
        "state_file": self.state_file,
    }
    config.update(common)
    return config


def from_config(cls, config):
    """`NewbobLRControl.from_config`."""
    config = dict(config)
    if config.get("step_shape") is not None:
        config["step_shape"] = _export.deserialize(config["step_shape"])
    if "returnn_config" in config:
        return cls.from_returnn_config(config.pop("returnn_config"), **config)
    for key in ("decay", "growth"):
        config[key] = _export.deserialize(config[key])
    if isinstance(config.get("learning_rates"), list) and all(
        isinstance(p, list) and len(p) == 2 for p in config["learning_rates"]
    ):
        config["learning_rates"] = dict(
            (int(e), lr) for e, lr in config["learning_rates"]
        )
    return cls(**config)
