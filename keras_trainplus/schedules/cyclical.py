"""`Cyclical` schedule (cyclical learning rates, Smith 2015)."""

import math

import keras
import numpy as np

from keras_trainplus import _export
from keras_trainplus import _validation as v
from keras_trainplus.schedules.schedule import Schedule

# Scale functions that cannot run on tensors are tabulated on the host for
# this many cycles (cycle mode) when no training horizon is known.
_DEFAULT_CYCLE_TABLE = 65536
_MAX_ITERATION_TABLE = 1 << 22


@_export.register
class Cyclical(Schedule):
    """Cyclical schedule with the semantics of torch's ``CyclicLR``.

    Up from `initial_value` towards `peak_value` and back, the amplitude
    multiplied by a scale function:

    ```
    T = step_size_up + step_size_down
    cycle = floor(1 + step / T)                  # 1-based
    x = 1 + step / T - cycle                     # position in the cycle
    h = x / r if x <= r else (x - 1) / (r - 1)   # r = step_size_up / T
    value = initial + (peak - initial) * h * scale_fn(cycle or step)
    ```

    Integer step sizes use integer arithmetic: exact at any step. Cyclical
    momentum runs from the maximum to the minimum (as `CyclicLR` does).

    Args:
        initial_value, peak_value: floats, the value at the start of each
            cycle and at the top of the first (torch's `base_lr`, `max_lr`).
        step_size_up, step_size_down: positive numbers of steps of the
            rising and falling halves. Default `2000` and `None` (= up).
        mode: `"triangular"` (scale 1), `"triangular2"` (amplitude halved
            each cycle) or `"exp_range"` (scale ``gamma ** step``).
        gamma: float > 0, base of the `"exp_range"` scale. Defaults to `1.0`.
        scale_fn: custom scale function replacing `mode`: a schedule, or a
            Python callable of one number (tabulated on the host if it
            cannot run on tensors; serializable when registered with
            `keras.saving.register_keras_serializable`).
        scale_mode: `"cycle"` or `"iterations"`: what `scale_fn` receives
            (ignored for built-in modes, as in torch).

    Example:

    >>> s = Cyclical(0.001, 0.006, step_size_up=2)
    >>> [round(float(s(i)), 6) for i in range(5)]
    [0.001, 0.0035, 0.006, 0.0035, 0.001]

    Raises:
        ValueError: for invalid arguments (e.g. a step size <= 0).
    """

    def __init__(
        self,
        initial_value,
        peak_value,
        step_size_up=2000,
        step_size_down=None,
        mode="triangular",
        gamma=1.0,
        scale_fn=None,
        scale_mode="cycle",
    ):
        self.initial_value = v.real("initial_value", initial_value)
        self.peak_value = v.real("peak_value", peak_value)
        self.step_size_up = _step_size("step_size_up", step_size_up)
        if step_size_down is None:
            self.step_size_down = None
        else:
            self.step_size_down = _step_size("step_size_down", step_size_down)
        self.mode = v.choice(
            "mode", mode, ("triangular", "triangular2", "exp_range")
        )
        self.gamma = v.positive("gamma", gamma)
        self.scale_mode = v.choice(
            "scale_mode", scale_mode, ("cycle", "iterations")
        )
        if scale_fn is not None and not callable(scale_fn):
            v.fail_type(
                "scale_fn",
                scale_fn,
                "a callable, a keras_trainplus schedule or None",
            )
        self.scale_fn = scale_fn
        # How many steps will be evaluated (`set_horizon`); bounds the host
        # table used for callables that reject tensors.
        self._horizon = None

    def set_horizon(self, num_steps):
        self._horizon = num_steps
        return super().set_horizon(num_steps)

    # -- geometry ---------------------------------------------------------

    @property
    def _down(self):
        return (
            self.step_size_up
            if self.step_size_down is None
            else (self.step_size_down)
        )

    def _effective_scale_mode(self):
        if self.scale_fn is not None:
            return self.scale_mode
        return "iterations" if self.mode == "exp_range" else "cycle"

    def _position(self, m, step):
        """Returns (cycle as int, h in [0, 1]) for the step."""
        up, down = self.step_size_up, self._down
        s = m.maximum(step, 0)
        if float(up).is_integer() and float(down).is_integer():
            up, down = int(up), int(down)
            total = up + down
            c = m.floordiv(s, total)
            pos = s - c * total
            h = m.where(
                pos <= up,
                m.float(pos) / up,
                m.float(total - pos) / down,
            )
            return c + 1, h
        total = float(up + down)
        ratio = up / total
        # Whole cycles first, then the position inside the cycle, so the
        # position is not the difference of two large rounded numbers.
        fs = m.float(s)
        c = m.floor(fs / total)
        pos = fs - c * total
        c = m.where(pos < 0, c - 1, m.where(pos >= total, c + 1, c))
        x = (fs - c * total) / total
        cycle = c + 1.0
        h = m.where(x <= ratio, x / ratio, (x - 1.0) / (ratio - 1.0))
        return m.int(cycle), h

    # -- scale ------------------------------------------------------------

    def _scale(self, m, cycle, step, base):
        mode = self._effective_scale_mode()
        x = cycle if mode == "cycle" else m.maximum(step, 0)
        fn = self.scale_fn
        if fn is None:
            if self.mode == "triangular":
                return 1.0
            if self.mode == "triangular2":
                return m.power(0.5, m.float(x - 1))
            return m.exp(m.float(x) * math.log(self.gamma))
        if isinstance(fn, Schedule):
            return fn._compute(m, x, base)
        if m.concrete:
            return m.call_user_fn(fn, x, "scale_fn")
        try:
            return m.call_user_fn(fn, x, "scale_fn")
        except Exception as error:  # e.g. math.sin on a symbolic tensor
            return m.take(
                self._scale_table(mode, error), self._index(m, x, mode)
            )

    def _table_size(self, mode, error):
        horizon = self._horizon
        if mode == "cycle":
            total = self.step_size_up + self._down
            if horizon is None:
                return _DEFAULT_CYCLE_TABLE
            return int(math.floor(horizon / total)) + 2
        if horizon is None or horizon > _MAX_ITERATION_TABLE:
            raise ValueError(
                f"`scale_fn={self.scale_fn!r}` cannot be evaluated on a "
                f"tensor ({type(error).__name__}: {error}) and, with "
                "scale_mode='iterations', cannot be tabulated without a "
                "known number of training steps. Write it with `keras.ops` "
                "(or plain arithmetic), or use a keras_trainplus schedule as "
                "`scale_fn`."
            ) from error
        return int(horizon) + 1

    def _scale_table(self, mode, error):
        n = self._table_size(mode, error)
        first = 1 if mode == "cycle" else 0
        fn = self.scale_fn
        table = []
        for x in range(first, first + n):
            value = fn(float(x))
            if keras.ops.is_tensor(value):
                value = keras.ops.convert_to_numpy(value)
            table.append(
                v.real(
                    f"scale_fn({float(x)!r})",
                    value,
                    what="the result of `scale_fn`",
                )
            )
        return np.asarray(table, dtype=np.float64)

    def _index(self, m, x, mode):
        first = 1 if mode == "cycle" else 0
        table_len = self._table_size(mode, None)
        return m.clip(x - first, 0, table_len - 1)

    # -- value ------------------------------------------------------------

    def _compute(self, m, step, base):
        cycle, h = self._position(m, step)
        scale = self._scale(m, cycle, step, base)
        amplitude = (self.peak_value - self.initial_value) * h
        return self.initial_value + amplitude * scale

    def children(self):
        return [self.scale_fn] if isinstance(self.scale_fn, Schedule) else []

    def get_config(self):
        return {
            "initial_value": self.initial_value,
            "peak_value": self.peak_value,
            "step_size_up": self.step_size_up,
            "step_size_down": self.step_size_down,
            "mode": self.mode,
            "gamma": self.gamma,
            "scale_fn": serialize_scale_fn(self.scale_fn),
            "scale_mode": self.scale_mode,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**with_scale_fn(config))


def _step_size(name, value):
    value = v.positive(name, value)
    return int(value) if float(value).is_integer() else value


def with_scale_fn(config):
    """A copy of `config` with its serialized `scale_fn` restored."""
    config = dict(config)
    config["scale_fn"] = _export.deserialize(config.get("scale_fn"))
    return config


def serialize_scale_fn(fn):
    """Serializes a scale function, refusing unregistered callables."""
    return _export.serialize_callable("scale_fn", fn)
