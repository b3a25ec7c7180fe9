"""Argument checks that raise Keras-style `ValueError`s at construction.

Every message names the argument and echoes the value received, e.g.
``Argument `max_lr` must be >= `base_lr`. Received: max_lr=0.001``.
"""

import math
import numbers


def _is_real(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def real(name, value, *, minimum=None, maximum=None, min_inclusive=True,
         max_inclusive=True, allow_none=False):
    """Checks that `value` is a finite real number within the given bounds."""
    if value is None and allow_none:
        return None
    if not _is_real(value) or not math.isfinite(value):
        raise ValueError(
            f"Argument `{name}` must be a finite number. "
            f"Received: {name}={value!r}"
        )
    if minimum is not None:
        bad = value < minimum if min_inclusive else value <= minimum
        if bad:
            op = ">=" if min_inclusive else ">"
            raise ValueError(
                f"Argument `{name}` must be {op} {minimum}. "
                f"Received: {name}={value!r}"
            )
    if maximum is not None:
        bad = value > maximum if max_inclusive else value >= maximum
        if bad:
            op = "<=" if max_inclusive else "<"
            raise ValueError(
                f"Argument `{name}` must be {op} {maximum}. "
                f"Received: {name}={value!r}"
            )
    return float(value)


def positive(name, value, allow_none=False):
    return real(name, value, minimum=0, min_inclusive=False,
                allow_none=allow_none)


def integer(name, value, *, minimum=None, allow_none=False):
    """Checks an integer (an integral float such as ``2000.0`` is accepted)."""
    if value is None and allow_none:
        return None
    ok = _is_real(value) and math.isfinite(value) and float(value).is_integer()
    if not ok:
        raise ValueError(
            f"Argument `{name}` must be an integer. Received: {name}={value!r}"
        )
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(
            f"Argument `{name}` must be >= {minimum}. "
            f"Received: {name}={value!r}"
        )
    return value


def choice(name, value, options):
    if value not in options:
        opts = ", ".join(repr(o) for o in options)
        raise ValueError(
            f"Argument `{name}` must be one of {opts}. "
            f"Received: {name}={value!r}"
        )
    return value


def boolean(name, value):
    if not isinstance(value, bool):
        raise ValueError(
            f"Argument `{name}` must be a bool. Received: {name}={value!r}"
        )
    return value
