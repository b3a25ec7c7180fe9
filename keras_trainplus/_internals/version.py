"""The Keras versions the hooks were tested on, and the checks.

Every public function of this package is a *hook*: it touches a private
Keras attribute. Each is declared with the minor Keras versions it was
tested on (``@hook("3.15")``). On another version the first call of each
hook warns once, naming it; a hook whose attribute is gone raises a clear
`RuntimeError` (`require`) instead of failing deep inside Keras.
"""

import functools
import warnings

import keras


def keras_version():
    """``(major, minor)`` of the installed Keras."""
    parts = keras.__version__.split(".")
    return tuple(
        int("".join(c for c in p if c.isdigit()) or 0) for p in parts[:2]
    )


_WARNED = set()


def untested(versions, version=None):
    """True when `version` (default: the installed one, ``(major, minor)``)
    is not one of `versions` (``"3.15"`` strings)."""
    major, minor = version or keras_version()
    return f"{major}.{minor}" not in versions


def hook(*versions):
    """Declares the Keras minor versions a hook was tested on (see module
    doc). The check costs one set lookup after the first call."""

    def decorate(fn):
        name = f"{fn.__module__.rsplit('.', 1)[-1]}.{fn.__name__}"

        @functools.wraps(fn)
        def checked(*args, **kwargs):
            if name not in _WARNED:
                _WARNED.add(name)
                if untested(versions):
                    warnings.warn(
                        f"keras_trainplus: the Keras internals hook `{name}` "
                        f"was tested on Keras {', '.join(versions)}; found "
                        f"Keras {keras.__version__}. If training misbehaves, "
                        "please report it with your Keras version.",
                        RuntimeWarning,
                        stacklevel=2,
                    )
            return fn(*args, **kwargs)

        checked.tested_on = versions
        return checked

    return decorate


def check_keras_version():
    """Warns when the installed Keras is not a major version 3."""
    if keras_version()[0] != 3:
        warnings.warn(
            f"keras_trainplus is written for Keras 3; found Keras "
            f"{keras.__version__}. In-graph schedules rely on optimizer "
            "internals that may have changed.",
            stacklevel=3,
        )


def require(obj, attr, purpose):
    """Raises a clear `RuntimeError` if `obj` lacks the private `attr`."""
    if not hasattr(obj, attr):
        raise RuntimeError(
            f"keras_trainplus cannot {purpose}: `{type(obj).__name__}` has "
            f"no attribute `{attr}` in Keras {keras.__version__}. Please "
            "report this with your Keras version."
        )
