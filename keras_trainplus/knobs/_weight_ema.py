"""`WeightEMAProgram`: the exponential moving average of a model's weights,
updated inside the compiled train step after every k-th real update.

After each train step (each step of a `steps_per_execution` block) the
program compares ``optimizer.iterations`` with the count it saw last: a
step that only accumulated gradients made no update. After update number
``i`` (``iterations = i``) with ``i % every_n_steps == 0``, EMA update
number ``t`` runs

```
decay_t = decay(i - 1)            # the knob's value, or the "ema_decay" program
decay_t = clip(1 - (1 + t / warmup_gamma) ** -warmup_power,
               min_decay, decay_t)                    (with warmup)
average = weight                                      (t = 0: a copy)
average = average + (1 - decay_t) * (weight - average)   (t > 0)
```

(torch's ``AveragedModel`` with ``get_ema_multi_avg_fn``; timm's
``ModelEmaV3`` warmup). A step without an EMA update keeps every average
exactly (the scalar ``1 - decay_t`` is 0 there: no per-element select).
"""

import weakref

import keras
import numpy as np
from keras import ops

from keras_trainplus import _internals as internals
from keras_trainplus.knobs._weight_averages import WeightAverages
from keras_trainplus.knobs.knob import Knob
from keras_trainplus.knobs.knob import _strategy_scope

_ACTIVE = weakref.WeakKeyDictionary()  # model -> its WeightEMAProgram
_NAME = "keras_trainplus_weight_ema"


def active(model):
    """The `WeightEMAProgram` installed on `model`, or None."""
    return _ACTIVE.get(model)


class WeightEMAProgram:
    """The EMA state of one `fit` and its in-graph update.

    Args:
        model: the model.
        decay: float, the decay knob's initial value (its base).
        every_n_steps: int >= 1.
        warmup: an `EMAWarmup` schedule, or None.
    """

    def __init__(self, model, decay, every_n_steps=1, warmup=None):
        self.model = model
        self.every_n_steps = every_n_steps
        self.warmup = warmup
        self.optimizer = internals.optimizer.optimizers_of(model.optimizer)[0]
        opt = self.optimizer
        self.decay = Knob(decay, name="ema_decay", model=model)
        self.constant_decay = float(decay)
        self.decay_program = None  # step -> decay (the "ema_decay" target)
        self.decay_from_knob = False  # a driver writes the knob per epoch
        self.averages = WeightAverages(model, "ema", optimizer=opt)
        with _strategy_scope(model):
            self.count = opt.add_variable((), dtype="int32", name="ema_count")
            self.seen = opt.add_variable(
                (), dtype=_dtype(_iterations(opt)), name="ema_seen"
            )
            self.last_decay = opt.add_variable(
                (), dtype="float32", name="ema_last_decay"
            )
        self.seen.assign(ops.copy(_iterations(opt)))  # no shared buffer
        self._scalars = [self.count, self.seen, self.last_decay]
        for variable in [self.decay.variable, *self._scalars]:
            internals.optimizer.attach_hidden_optimizer_state(opt, variable)

    # -- install ------------------------------------------------------------

    def install(self):
        if active(self.model) is not None:
            raise ValueError(
                "Two `WeightEMA` callbacks average the weights of model "
                f"{self.model.name!r} in one `fit`. Keep one of them."
            )
        _ACTIVE[self.model] = self
        internals.trainer.set_post_update(self.model, _NAME, self.update)

    def uninstall(self):
        internals.trainer.set_post_update(self.model, _NAME, None)
        if _ACTIVE.get(self.model) is self:
            del _ACTIVE[self.model]
        self.averages.release()
        for variable in [self.decay.variable, *self._scalars]:
            internals.optimizer.detach_hidden_optimizer_state(
                self.optimizer, variable
            )

    # -- the in-graph update -----------------------------------------------

    def _gated(self):
        """Whether a train step can end without an EMA update (decided when
        the step is traced): every k-th update, a step that only
        accumulates gradients, a step a `LossScaleOptimizer` skips (non-finite
        gradients), or a decay that is a function of the step.
        Otherwise every step is an EMA update and the step's scalars are
        the count alone (cheaper on XLA, measured on JAX)."""
        opt = self.optimizer
        return bool(
            self.every_n_steps > 1
            or self.model.optimizer is not opt  # a wrapper may skip steps
            or self.decay_program is not None
            or self.decay_from_knob
            or getattr(opt, "gradient_accumulation_steps", None)
            or internals.gradient_accumulation.has_apply_program(opt)
        )

    def _decay(self, step, t):
        if self.decay_program is not None:
            decay = ops.cast(self.decay_program(step), "float32")
        elif self.decay_from_knob:
            decay = self.decay.variable.value
        else:
            decay = self.constant_decay
        if self.warmup is not None:
            decay = ops.cast(self.warmup.evaluate(t, base=decay), "float32")
        return decay

    def update(self):
        t = self.count.value
        if not self._gated():
            decay = self._decay(None, t)
            weight = ops.where(ops.equal(t, 0), 1.0, 1.0 - decay)
            self._assign(weight, [t + 1])
            return
        iterations = _iterations(self.optimizer)
        updated = ops.not_equal(iterations, self.seen.value)
        if self.every_n_steps > 1:
            due = ops.equal(ops.mod(iterations, self.every_n_steps), 0)
            updated = ops.logical_and(updated, due)
        decay = self._decay(iterations - 1, t)
        weight = ops.where(ops.equal(t, 0), 1.0, 1.0 - decay)
        weight = ops.where(updated, weight, 0.0)  # 0: the average stays
        self._assign(
            weight,
            [
                t + ops.cast(updated, "int32"),
                iterations,
                ops.where(updated, decay, self.last_decay.value),
            ],
        )

    def _assign(self, weight, scalars):
        values = []
        for w, a in zip(self.averages.weights, self.averages.averages):
            step = ops.cast(weight, a.dtype) * (w.value - a.value)
            values.append(a.value + step)
        internals.gradient_accumulation.assign_per_replica(
            self.optimizer,
            [*self.averages.averages, *self._scalars[: len(scalars)]],
            values + scalars,
        )

    # -- host side -----------------------------------------------------------

    def updates_done(self):
        return int(ops.convert_to_numpy(self.count))

    def last_decay_value(self):
        """The decay of the last EMA update (the variable when the step
        tracks it, else the same formula on the host)."""
        done = self.updates_done()
        variable = self.decay_program is not None or self.decay_from_knob
        if variable and done:
            return float(ops.convert_to_numpy(self.last_decay))
        if variable:
            return float(self.decay)
        t = max(done - 1, 0)
        if self.warmup is None:
            return self.constant_decay
        return float(
            self.warmup.evaluate(np.int64(t), base=self.constant_decay)
        )

    def sync_seen(self):
        """After a restore: the update count the next step compares with."""
        self.seen.assign(ops.copy(_iterations(self.optimizer)))

    def state(self):
        """What a backup saves: arrays by name."""
        scalars = {
            "count": self.count,
            "seen": self.seen,
            "last_decay": self.last_decay,
            "decay": self.decay.variable,
        }
        out = {k: ops.convert_to_numpy(x) for k, x in scalars.items()}
        for i, array in enumerate(self.averages.numpy()):
            out[f"average_{i}"] = array
        return out

    def load_state(self, arrays):
        averages = sorted(k for k in arrays if k.startswith("average_"))
        self.averages.load(
            [arrays[f"average_{i}"] for i in range(len(averages))],
            "WeightEMA state",
        )
        self.count.assign(arrays["count"])
        self.seen.assign(arrays["seen"])
        self.last_decay.assign(arrays["last_decay"])
        self.decay.assign(float(arrays["decay"]), model=self.model)


def _iterations(optimizer):
    # Read after the update (not the per-graph cached step, read before).
    return ops.convert_to_tensor(optimizer.iterations)


def _dtype(x):
    return keras.backend.standardize_dtype(x.dtype)


def check_no_keras_ema(model, owner):
    """Keras's own `use_ema` averages (and overwrites) the weights too."""
    for opt in internals.optimizer.optimizers_of(model.optimizer):
        if getattr(opt, "use_ema", False):
            raise ValueError(
                f"{owner} averages the weights itself, but the optimizer "
                f"{opt.name!r} was created with `use_ema=True` (Keras's own "
                "average, which overwrites the weights at the end of `fit`). "
                f"Create the optimizer with `use_ema=False` to use {owner}."
            )
