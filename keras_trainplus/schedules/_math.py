"""Numeric core shared by every schedule.

Two rules keep schedules exact for arbitrarily long runs:

* The step is an **integer** everywhere. Differences such as "steps since a
  boundary" or "steps left in a phase" are computed in integer arithmetic and
  only then converted to floating point, so a value near a boundary never
  suffers from the rounding of a large step (a float32 cannot even represent
  ``2**24 + 1``).
* Floating point work uses **float64** where the backend has it (TensorFlow,
  torch, JAX with ``jax_enable_x64``), float32 otherwise (default JAX).

A schedule is written once against the small namespace below. Concrete steps
(Python or NumPy integers) are evaluated with NumPy in float64 on the host;
tensors (e.g. ``optimizer.iterations`` inside a compiled train step) are
evaluated with ``keras.ops``.
"""

import math

import keras
import numpy as np
from keras import ops


def _jax_x64():
    import jax

    return bool(jax.config.jax_enable_x64)


def float_dtype():
    """Widest float dtype the current backend computes with in-graph."""
    if keras.backend.backend() == "jax" and not _jax_x64():
        return "float32"
    return "float64"


def int_dtype():
    """Widest integer dtype the current backend computes with in-graph."""
    if keras.backend.backend() == "jax" and not _jax_x64():
        return "int32"
    return "int64"


def is_concrete(x):
    """True for Python / NumPy numbers (host values, not backend tensors)."""
    return isinstance(x, (int, float, np.integer, np.floating)) or (
        isinstance(x, np.ndarray) and x.ndim == 0
    )


class HostMath:
    """NumPy float64 / int64 implementation, for concrete steps."""

    concrete = True
    float64 = True
    pi = math.pi

    def int(self, x):
        return np.int64(x)

    def float(self, x):
        return np.float64(x)

    def result(self, x):
        return np.float64(x)

    where = staticmethod(np.where)
    minimum = staticmethod(np.minimum)
    maximum = staticmethod(np.maximum)
    cos = staticmethod(np.cos)
    sin = staticmethod(np.sin)
    exp = staticmethod(np.exp)
    log = staticmethod(np.log)
    sqrt = staticmethod(np.sqrt)
    floor = staticmethod(np.floor)
    power = staticmethod(np.power)

    def floordiv(self, a, b):
        return np.floor_divide(a, b)

    def take(self, table, index):
        return np.asarray(table, dtype=np.float64)[index]

    def clip(self, x, lo, hi):
        return np.minimum(np.maximum(x, lo), hi)

    def call_user_fn(self, fn, x, name="fn"):
        """`fn(x)` on the host; a result that is not a number raises a
        `ValueError` naming the argument `name`."""
        from keras_trainplus import _validation as v

        value = fn(np.float64(x))
        if keras.ops.is_tensor(value):
            value = keras.ops.convert_to_numpy(value)
        return np.float64(
            v.real(
                f"{name}({float(x)!r})", value, what=f"the result of `{name}`"
            )
        )


class GraphMath:
    """`keras.ops` implementation, for tensors inside compiled steps."""

    concrete = False
    pi = math.pi

    def __init__(self):
        self.fdtype = float_dtype()
        self.idtype = int_dtype()
        self.float64 = self.fdtype == "float64"

    def int(self, x):
        return ops.cast(x, self.idtype)

    def float(self, x):
        if is_concrete(x):
            # `ops.cast` of a Python float goes through float32 on TF.
            return ops.convert_to_tensor(
                np.asarray(x, np.float64), dtype=self.fdtype
            )
        return ops.cast(x, self.fdtype)

    def result(self, x):
        return self.float(x)

    def where(self, cond, a, b):
        return ops.where(cond, a, b)

    minimum = staticmethod(ops.minimum)
    maximum = staticmethod(ops.maximum)
    cos = staticmethod(ops.cos)
    sin = staticmethod(ops.sin)
    exp = staticmethod(ops.exp)
    log = staticmethod(ops.log)
    sqrt = staticmethod(ops.sqrt)
    floor = staticmethod(ops.floor)

    def power(self, a, b):
        return ops.power(self.float(a), self.float(b))

    def floordiv(self, a, b):
        return ops.floor_divide(a, b)

    def take(self, table, index):
        table = ops.convert_to_tensor(np.asarray(table), dtype=self.fdtype)
        return ops.take(table, index)

    def clip(self, x, lo, hi):
        return ops.minimum(ops.maximum(x, lo), hi)

    def call_user_fn(self, fn, x, name="fn"):
        return self.float(fn(self.float(x)))


def prepare(step):
    """Returns ``(math, integer_step)`` for a concrete number or a tensor."""
    if is_concrete(step):
        return HostMath(), np.int64(math.floor(step))
    m = GraphMath()
    return m, m.int(step)


def split_boundary(b):
    """Splits a real boundary into an integer part and a fraction in [0, 1)."""
    whole = math.floor(b)
    return int(whole), float(b - whole)


def offset(m, step, boundary):
    """``step - boundary`` as a float, exact near the boundary.

    ``step`` is an integer (tensor or NumPy), ``boundary`` a Python number.
    The integer part is subtracted in integer arithmetic first.
    """
    if m.float64:
        # float64 holds steps exactly up to 2**53: one shared cast.
        return m.float(step) - boundary
    whole, frac = split_boundary(boundary)
    d = m.float(step - whole)
    return d - frac if frac else d


def remaining(m, boundary, step):
    """``boundary - step`` as a float, exact near the boundary."""
    if m.float64:
        return boundary - m.float(step)
    whole, frac = split_boundary(boundary)
    d = m.float(whole - step)
    return d + frac if frac else d


def anneal(m, kind, start_value, end_value, done, left, total):
    """Interpolates `start_value` -> `end_value` at ``p = done / total``.

    `kind` is "linear", "cos" (half-cosine) or "geometric" (log-linear,
    both values positive). `done` and `left` are floats
    with ``done + left == total``; `left` is a zero-argument callable, only
    evaluated when float32 needs it.

    In float64, ``p`` carries a relative error of ~1e-16, so the direct forms
    ``a + (b - a) * p`` and ``b + (a - b) * cos(pi p / 2)**2`` stay accurate
    to far below 1e-6 even at the very end of a 1e8-step decay to zero, with
    the fewest ops (each op costs ~0.25 us per step in TF's executor). In
    float32, the end of a ramp is computed from the exact number of steps
    left instead.
    """
    if kind == "geometric":
        log_ratio = math.log(end_value / start_value)
        return start_value * m.exp(done * (log_ratio / total))
    if m.float64:
        if kind == "linear":
            return start_value + (end_value - start_value) * (done / total)
        c = m.cos((0.5 * m.pi / total) * done)
        return end_value + (start_value - end_value) * (c * c)
    left = left()
    if kind == "linear":
        return (start_value * left + end_value * done) / total
    w = cos_weight(m, done, left, total)
    return end_value + (start_value - end_value) * w


def cos_weight(m, done, left, total):
    """The cosine annealing weight ``(1 + cos(pi * p)) / 2``, p = done/total.

    Written as ``cos(pi p / 2)**2`` for p <= 1/2 and ``sin(pi q / 2)**2`` with
    q = left/total for p > 1/2, so that both ends are accurate to relative
    precision (no ``1 + cos`` cancellation near the end of a decay).
    ``done`` and ``left`` are floats with ``done + left == total``.
    """
    p = done / total
    q = left / total
    a = m.cos(0.5 * m.pi * p)
    b = m.sin(0.5 * m.pi * q)
    return m.where(p <= 0.5, a * a, b * b)
