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


def build(cls, config, kwargs):
    """The callback `cls` for a RETURNN `config` dict (see the method)."""
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
            stacklevel=2,
        )

    # Messages name the RETURNN key the user wrote, not our argument.
    keys = {}

    def get(argument, *names, default=None):
        keys[argument] = names[0]
        for k in names:
            if k in config and config[k] is not None:
                keys[argument] = k
                return config[k]
        return default

    arguments = dict(
        control=get("control", "learning_rate_control", default="constant"),
        monitor="val_loss",
        mode="min",
        initial_lr=get("initial_lr", "learning_rate", default=1.0),
        learning_rates=None,
        decay=get(
            "decay",
            "learning_rate_decay",
            "newbob_learning_rate_decay",
            default=0.5,
        ),
        growth=get(
            "growth",
            "learning_rate_growth",
            "newbob_learning_rate_growth",
            default=1.0,
        ),
        relative_error_threshold=get(
            "relative_error_threshold",
            "newbob_relative_error_threshold",
            default=-0.01,
        ),
        error_threshold=get(
            "error_threshold", "newbob_error_threshold", default=-0.01
        ),
        relative_error_grow_threshold=get(
            "relative_error_grow_threshold",
            "newbob_relative_error_grow_threshold",
        ),
        multi_num_epochs=get(
            "multi_num_epochs", "newbob_multi_num_epochs", default=5
        ),
        multi_update_interval=get(
            "multi_update_interval", "newbob_multi_update_interval"
        ),
        relative_error_relative_lr=_values.returnn_bool(
            "learning_rate_control_relative_error_relative_lr",
            get(
                "relative_error_relative_lr",
                "learning_rate_control_relative_error_relative_lr",
                default=False,
            ),
        ),
        relative_error_div_by_old=_values.returnn_bool(
            "newbob_relative_error_div_by_old",
            get(
                "relative_error_div_by_old",
                "newbob_relative_error_div_by_old",
                default=False,
            ),
        ),
        min_num_epochs_per_new_lr=get(
            "min_num_epochs_per_new_lr",
            "learning_rate_control_min_num_epochs_per_new_lr",
            default=0,
        ),
        min_lr=get("min_lr", "min_learning_rate", default=0.0),
        state_file=get("state_file", "learning_rate_file"),
    )
    with v.aliases(keys):
        cb = cls(**arguments, **kwargs)
        cb.learning_rates = _values.predefined(
            _values.returnn_lrs(config.get("learning_rates")), offset=1
        )
    measure = get("error_measure", "learning_rate_control_error_measure")
    if measure is not None and not (
        isinstance(measure, str)
        or (
            isinstance(measure, (list, tuple))
            and all(isinstance(k, str) for k in measure)
        )
    ):
        v.fail_type(
            "learning_rate_control_error_measure",
            measure,
            "a logs key or a list of keys",
        )
    cb._error_measure = measure
    cb._returnn_config = {
        k: _values.plain(config[k]) for k in config if k in RETURNN_KEYS
    }
    return cb
