"""Argument checks that raise Keras-style errors at construction.

Every message names the argument and echoes the value received, e.g.
``Argument `max_lr` must be >= `base_lr`. Received: max_lr=0.001``.

A value of the wrong type raises `ArgumentTypeError`, which is both a
`TypeError` and a `ValueError`; a value of the right type but out of range
raises `ValueError`. Callers that forward an argument under another name
(e.g. `PerEpochLR` builds a `PerEpoch` from `learning_rates`) wrap the call
in ``aliases({"values": "learning_rates"})`` so messages name the argument
as the user wrote it.
"""

import contextlib
import contextvars
import math
import numbers

import numpy as np


class ArgumentTypeError(TypeError, ValueError):
    """An argument of the wrong type (also a `ValueError`, so code that
    catches the `ValueError` of a bad value catches it too)."""


_ALIASES = contextvars.ContextVar("keras_trainplus_aliases", default=None)


@contextlib.contextmanager
def aliases(mapping):
    """Within the block, messages say ``mapping[name]`` for ``name`` (also
    as the head of ``name[i]`` or ``name.attr``)."""
    table = dict(_ALIASES.get() or {})
    table.update(mapping)
    token = _ALIASES.set(table)
    try:
        yield
    finally:
        _ALIASES.reset(token)


def display(name):
    """The name the user wrote for argument `name` (see `aliases`)."""
    table = _ALIASES.get()
    if not table:
        return name
    cut = min(
        [i for i in (name.find("["), name.find("."), name.find("(")) if i > 0]
        or [len(name)]
    )
    head = name[:cut]
    return table.get(head, head) + name[cut:]


def fail(name, value, expected, error=ValueError):
    """Raises ``error("Argument `name` must be <expected>. Received: ...")``
    with `name` as the user wrote it."""
    name = display(name)
    raise error(
        f"Argument `{name}` must be {expected}. Received: {name}={value!r}"
    )


def fail_type(name, value, expected):
    fail(name, value, expected, ArgumentTypeError)


def _is_real(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def scalar(value):
    """A 0-d NumPy array or scalar tensor as a Python number; anything else
    is returned unchanged (for the checks to report)."""
    if isinstance(value, np.ndarray):
        return value.item() if value.shape == () else value
    if isinstance(value, (str, bytes, numbers.Number)) or value is None:
        return value
    import keras

    if keras.ops.is_tensor(value) and tuple(value.shape) == ():
        return np.asarray(keras.ops.convert_to_numpy(value)).item()
    return value


def _range(minimum, maximum, min_inclusive, max_inclusive):
    if minimum is not None and maximum is not None:
        return (
            f"in {'[' if min_inclusive else '('}{minimum}, {maximum}"
            f"{']' if max_inclusive else ')'}"
        )
    if minimum is not None:
        return f"{'>=' if min_inclusive else '>'} {minimum}"
    if maximum is not None:
        return f"{'<=' if max_inclusive else '<'} {maximum}"
    return ""


def real(
    name,
    value,
    *,
    minimum=None,
    maximum=None,
    min_inclusive=True,
    max_inclusive=True,
    allow_none=False,
    allow_inf=False,
    what=None,
):
    """Checks that `value` is a finite real number within the given bounds
    (`allow_inf`: ``+inf`` is accepted too) and returns it as a float."""
    if value is None and allow_none:
        return None
    value = scalar(value)
    bounds = _range(minimum, maximum, min_inclusive, max_inclusive)
    expected = "a finite number" + (f" {bounds}" if bounds else "")
    if allow_inf:
        expected += " or math.inf"
    if allow_none:
        expected += " or None"
    if what:
        expected += f" ({what})"
    if not _is_real(value):
        fail_type(name, value, expected)
    if allow_inf and value == math.inf:
        return math.inf
    if not math.isfinite(value):
        fail(name, value, expected)
    low = minimum is not None and (
        value < minimum if min_inclusive else value <= minimum
    )
    high = maximum is not None and (
        value > maximum if max_inclusive else value >= maximum
    )
    if low or high:
        fail(name, value, expected)
    return float(value)


def positive(name, value, allow_none=False):
    return real(
        name, value, minimum=0, min_inclusive=False, allow_none=allow_none
    )


def integer(name, value, *, minimum=None, allow_none=False):
    """Checks an integer (an integral float such as ``2000.0`` is accepted)."""
    if value is None and allow_none:
        return None
    value = scalar(value)
    expected = "an integer" + (f" >= {minimum}" if minimum is not None else "")
    if allow_none:
        expected += " or None"
    if not _is_real(value):
        fail_type(name, value, expected)
    if not (math.isfinite(value) and float(value).is_integer()):
        fail(name, value, expected)
    if minimum is not None and value < minimum:
        fail(name, value, expected)
    return int(value)


# Spellings of one curve: torch writes "cos", the schedules "cosine".
CURVE_ALIASES = {"cos": "cosine", "cosine": "cos"}


def choice(name, value, options):
    """Checks that `value` is one of `options` (same type, so `True` is not
    `1` and an array is never compared element-wise). ``"cos"`` and
    ``"cosine"`` name the same curve: either is accepted where the other
    is an option."""
    if (
        isinstance(value, str)
        and value not in options
        and value in CURVE_ALIASES
        and CURVE_ALIASES[value] in options
    ):
        value = CURVE_ALIASES[value]
    for option in options:
        if (
            isinstance(value, type(option))
            and isinstance(option, bool) == isinstance(value, bool)
            and value == option
        ):
            return option
    fail(name, value, "one of " + ", ".join(repr(o) for o in options))


def boolean(name, value):
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    fail_type(name, value, "a bool")


def string(name, value, *, allow_none=False):
    """A non-empty string (or None when allowed)."""
    if value is None and allow_none:
        return None
    if not isinstance(value, str) or not value:
        fail_type(
            name,
            value,
            "a non-empty string" + (" or None" if allow_none else ""),
        )
    return value


def path(name, value, *, allow_none=False):
    """A file path (str or `os.PathLike`), returned as a str."""
    import os

    if value is None and allow_none:
        return None
    if not isinstance(value, (str, os.PathLike)) or not os.fspath(value):
        fail_type(
            name, value, "a file path" + (" or None" if allow_none else "")
        )
    return os.fspath(value)


def sequence(name, value, what="a list"):
    """A list from a list, tuple, range, 1-D array or other ordered
    iterable; strings, dicts, sets and scalars are refused."""
    bad = isinstance(value, (str, bytes, dict, set, frozenset)) or (
        isinstance(value, np.ndarray) and value.ndim != 1
    )
    if not bad:
        try:
            return list(value)
        except TypeError:
            pass
    fail_type(name, value, what)


def function(name, value, *, allow_none=False):
    if value is None and allow_none:
        return None
    if not callable(value):
        fail_type(
            name, value, "a callable" + (" or None" if allow_none else "")
        )
    return value


# -- values of scheduled hyperparameters ---------------------------------------

#: target -> (minimum, maximum, min_inclusive, max_inclusive, allow_inf,
#: what). Dropout-like and momentum-like targets exclude 1.
_TARGET_RANGES = {
    "learning_rate": (0, None, True, True, False, "a learning rate"),
    "lr": (0, None, True, True, False, "a learning rate"),
    "momentum": (0, 1, True, False, False, "a momentum"),
    "beta_1": (0, 1, True, False, False, "an Adam beta_1"),
    "beta_2": (0, 1, True, False, False, "an Adam beta_2"),
    "weight_decay": (0, None, True, True, False, "a weight decay"),
    "gradient_clip": (0, None, False, True, True, "a clip threshold"),
    "dropout": (0, 1, True, False, False, "a dropout rate"),
    "gradient_noise": (0, None, True, True, False, "a noise std"),
    "weight_noise": (0, None, True, True, False, "a noise std"),
    "gradient_accumulation": (1, None, True, True, False, "a factor"),
    "ema_decay": (0, 1, True, True, False, "an EMA decay"),
}


# Knob names that augmentation layers bound to [0, 1] (each layer class
# registers its own: see `layers/_augmentation.py`).
_UNIT_KNOBS = set()


def register_unit_knobs(names):
    """Declares knob names whose values lie in [0, 1]."""
    _UNIT_KNOBS.update(names)


def _target_range(target):
    if hasattr(target, "allow_infinite") and hasattr(target, "variable"):
        return (None, None, True, True, target.allow_infinite, None)  # Knob
    if not isinstance(target, str):
        fail_type("target", target, "a hyperparameter target name")
    if target.startswith("dropout:"):
        return _TARGET_RANGES["dropout"]
    if target.startswith("weight_noise:"):
        return _TARGET_RANGES["weight_noise"]
    if target.startswith("lr_multiplier:"):
        return (0, None, True, True, False, "a learning-rate multiplier")
    if target in _TARGET_RANGES:
        return _TARGET_RANGES[target]
    layer, dot, knob = target.rpartition(".")
    if dot and layer and knob:
        if knob in _UNIT_KNOBS:
            return (0, 1, True, True, False, f"the knob {knob!r}")
        return (0, None, True, True, False, f"the knob {knob!r}")
    return (None, None, True, True, False, None)


def target_value(target, value, argument):
    """Checks `value` for the hyperparameter target `target`.

    Ranges: ``"learning_rate"``/``"lr"`` and ``"weight_decay"``: finite
    and >= 0; ``"momentum"``, ``"beta_1"``, ``"beta_2"``, ``"dropout"``
    and ``"dropout:<layer>"``: in [0, 1); ``"gradient_clip"``: > 0, where
    `math.inf` and `None` mean "no clipping"; ``"gradient_noise"``,
    ``"weight_noise"``, ``"weight_noise:<layer>"`` and
    ``"lr_multiplier:<layer>"``: finite and >= 0;
    ``"gradient_accumulation"``: an integer >= 1; ``"ema_decay"``: in
    [0, 1]; augmentation knobs
    ``"<layer>.<knob>"``: finite and >= 0, in [0, 1] for probabilities
    and ratios. Other names: any finite number. NumPy scalars, 0-d arrays
    and scalar tensors are accepted.

    Args:
        target: the target name, as in `HyperparameterScheduler`.
        value: the value to check.
        argument: the argument as the user wrote it, for the message
            (e.g. ``"schedules['momentum']"``, ``"schedule[3]"``).

    Returns:
        The value as a Python float (`math.inf` for a clip of None).

    Raises:
        ValueError: naming `argument` and the value, for a value outside
            the target's range (`ArgumentTypeError`, also a `TypeError`,
            for a value that is not a number).
    """
    low, high, low_in, high_in, infinite, what = _target_range(target)
    if value is None and infinite:
        return math.inf
    if what:
        what = f"{what} for {target!r}"
    if infinite:
        what += "; math.inf or None: no clipping"
    if target == "gradient_accumulation":
        factor = integer(argument, value, minimum=1)
        if factor > 2**31 - 1:  # an int32 in the compiled step
            fail(argument, value, "an integer in [1, 2**31 - 1]")
        return float(factor)
    return real(
        argument,
        value,
        minimum=low,
        maximum=high,
        min_inclusive=low_in,
        max_inclusive=high_in,
        allow_inf=infinite,
        what=what,
    )


def is_integer(value, minimum=None):
    """Whether `integer(...)` would accept `value` (no error raised)."""
    value = scalar(value)
    return (
        _is_real(value)
        and math.isfinite(value)
        and float(value).is_integer()
        and (minimum is None or value >= minimum)
    )
