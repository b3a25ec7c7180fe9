"""`NewbobLRControl.from_returnn_config`: RETURNN config keys to
arguments, with RETURNN's defaults, names and 1-based epochs (see
docs/newbob.md)."""

import warnings

from keras_trainplus import _validation as v
from keras_trainplus.callbacks.newbob import _values

RETURNN_KEYS = {
    "learning_rate_control",
    "learning_rate",
    "learning_rates",
    "min_learning_rate",
    "learning_rate_decay",
    "newbob_learning_rate_decay",
    "learning_rate_growth",
    "newbob_learning_rate_growth",
    "newbob_relative_error_threshold",
    "newbob_error_threshold",
    "newbob_multi_num_epochs",
    "newbob_multi_update_interval",
    "newbob_relative_error_grow_threshold",
    "newbob_relative_error_div_by_old",
    "learning_rate_control_relative_error_relative_lr",
    "learning_rate_control_min_num_epochs_per_new_lr",
    "learning_rate_control_error_measure",
    "learning_rate_file",
}


# NewbobLRControl argument <- RETURNN keys (first set one wins), default.
ARGUMENTS = (
    ("control", ("learning_rate_control",), "constant"),
    ("initial_lr", ("learning_rate",), 1.0),
    ("decay", ("learning_rate_decay", "newbob_learning_rate_decay"), 0.5),
    ("growth", ("learning_rate_growth", "newbob_learning_rate_growth"), 1.0),
    ("relative_error_threshold", ("newbob_relative_error_threshold",), -0.01),
    ("error_threshold", ("newbob_error_threshold",), -0.01),
    (
        "relative_error_grow_threshold",
        ("newbob_relative_error_grow_threshold",),
        None,
    ),
    ("multi_num_epochs", ("newbob_multi_num_epochs",), 5),
    ("multi_update_interval", ("newbob_multi_update_interval",), None),
    (
        "relative_error_relative_lr",
        ("learning_rate_control_relative_error_relative_lr",),
        False,
    ),
    ("relative_error_div_by_old", ("newbob_relative_error_div_by_old",), False),
    (
        "min_num_epochs_per_new_lr",
        ("learning_rate_control_min_num_epochs_per_new_lr",),
        0,
    ),
    ("min_lr", ("min_learning_rate",), 0.0),
    ("state_file", ("learning_rate_file",), None),
)
# RETURNN reads these with `Config.bool`.
_BOOLEANS = ("relative_error_relative_lr", "relative_error_div_by_old")


def build(cls, config, kwargs):
    """The callback `cls` for a RETURNN `config` dict (see the method)."""
    _check(config, kwargs)
    arguments, keys = {"monitor": "val_loss", "mode": "min"}, {}
    for argument, names, default in ARGUMENTS:
        # Messages name the RETURNN key the user wrote, not our argument.
        key = next((k for k in names if config.get(k) is not None), None)
        keys[argument] = key or names[0]
        value = default if key is None else config[key]
        if argument in _BOOLEANS:
            value = _values.returnn_bool(keys[argument], value)
        arguments[argument] = value
    with v.aliases(keys):
        cb = cls(**arguments, **kwargs)
        cb.learning_rates = _values.predefined(
            _values.returnn_lrs(config.get("learning_rates")), offset=1
        )
    cb._error_measure = _error_measure(config)
    cb._returnn_config = {
        k: _values.plain(config[k]) for k in config if k in RETURNN_KEYS
    }
    return cb


def _check(config, kwargs):
    if not isinstance(config, dict):
        v.fail_type("config", config, "a dict of RETURNN config keys")
    if not all(isinstance(k, str) for k in config):
        v.fail_type("config", config, "a dict with string keys")
    allowed = {"restore_best_weights", "step_shape", "verbose"}
    if set(kwargs) - allowed:
        raise ValueError(
            "from_returnn_config accepts only RETURNN keys in `config` "
            f"and {sorted(allowed)} as keyword arguments. Received: "
            f"{sorted(set(kwargs) - allowed)}"
        )
    unknown = [
        k
        for k in config
        if k not in RETURNN_KEYS
        and (k.startswith("newbob") or k.startswith("learning_rate"))
    ]
    if unknown:
        warnings.warn(
            f"Ignoring unknown RETURNN learning-rate keys {unknown}; "
            "known keys: " + ", ".join(sorted(RETURNN_KEYS)),
            stacklevel=4,
        )


def _error_measure(config):
    key = "learning_rate_control_error_measure"
    measure = config.get(key)
    if measure is not None and not (
        isinstance(measure, str)
        or (
            isinstance(measure, (list, tuple))
            and all(isinstance(k, str) for k in measure)
        )
    ):
        v.fail_type(key, measure, "a logs key or a list of keys")
    return measure
