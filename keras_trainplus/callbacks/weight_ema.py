"""`WeightEMA`: an exponential moving average of the weights, in-graph."""

from keras_trainplus import _export
from keras_trainplus import _validation as v
from keras_trainplus.callbacks import _arguments
from keras_trainplus.callbacks import _averaging
from keras_trainplus.callbacks.hyperparameter_scheduler import (
    HyperparameterScheduler,
)
from keras_trainplus.knobs import _weight_ema
from keras_trainplus.schedules.ema_warmup import EMAWarmup
from keras_trainplus.schedules.schedule import Schedule


@_export.register
class WeightEMA(HyperparameterScheduler):
    """Exponential moving average of the weights (timm's ``ModelEmaV3``),
    updated inside the compiled step, exact at any `steps_per_execution`.

    Every float weight is averaged (BatchNormalization statistics too, not
    RNG states) after every `every_n_steps`-th real update; the first EMA
    update copies the weights, EMA update ``t`` uses ``decay_t`` (`decay`,
    or with warmup ``clip(1 - (1 + t / warmup_gamma) ** -warmup_power,
    min_decay, decay)``). `decay` is the base of the driver target
    ``"ema_decay"``. Logged: ``logs["ema_decay"]``, the decay of the
    epoch's last EMA update. How it differs from Keras's ``use_ema``,
    resuming, distribution: [docs/weight_averaging.md](
    ../docs/weight_averaging.md).

    Args:
        decay: float in [0, 1], or a `Schedule` of the update (or a
            `PerEpoch` one). Defaults to `0.999`.
        use_warmup: bool. Defaults to `False`.
        warmup_gamma: float > 0. Defaults to `1.0`.
        warmup_power: float > 0. Defaults to `2/3`.
        min_decay: float in [0, 1). Defaults to `0.0`.
        every_n_steps: int >= 1. Defaults to `1`.
        evaluate_with_ema: bool. Validation during `fit` runs on the
            averaged weights; the raw ones are restored bit for bit.
            Defaults to `True`.
        apply_at_end: bool. The model holds the average after `fit`.
            Defaults to `True`.

    Example:

    ```python
    model.fit(x, y, validation_data=(xv, yv), epochs=10, callbacks=[
        keras_trainplus.callbacks.WeightEMA(decay=0.999, use_warmup=True),
    ])
    ```

    Raises:
        ValueError: for an argument out of range; at `fit`, for an
            optimizer with ``use_ema=True`` or two averages of one model.
    """

    def __init__(
        self,
        decay=0.999,
        use_warmup=False,
        warmup_gamma=1.0,
        warmup_power=2 / 3,
        min_decay=0.0,
        every_n_steps=1,
        evaluate_with_ema=True,
        apply_at_end=True,
    ):
        if isinstance(decay, Schedule):
            if decay.uses_base() and not decay.per_epoch_leaves():
                v.fail(
                    "decay",
                    decay,
                    "a float or a schedule of its own values (a schedule "
                    "reading the base has no base here: pass a float "
                    "`decay` and schedule the target 'ema_decay' with "
                    "`HyperparameterScheduler`)",
                )
            self.decay = decay
        else:
            self.decay = v.real("decay", decay, minimum=0, maximum=1)
        self.use_warmup = v.boolean("use_warmup", use_warmup)
        self.warmup_gamma = v.positive("warmup_gamma", warmup_gamma)
        self.warmup_power = v.positive("warmup_power", warmup_power)
        self.min_decay = v.real(
            "min_decay", min_decay, minimum=0, maximum=1, max_inclusive=False
        )
        if not isinstance(self.decay, Schedule) and self.min_decay > self.decay:
            v.fail("min_decay", min_decay, f"<= decay ({self.decay!r})")
        self.every_n_steps = v.integer(
            "every_n_steps", every_n_steps, minimum=1
        )
        self.evaluate_with_ema = v.boolean(
            "evaluate_with_ema", evaluate_with_ema
        )
        self.apply_at_end = v.boolean("apply_at_end", apply_at_end)
        super().__init__(_arguments.built_at_fit)

    def _resolve_schedules(self):
        self.options = {"ema_decay": {"argument": "decay"}}
        if isinstance(self.decay, Schedule):
            return {"ema_decay": self.decay}
        return {}  # the decay knob's own value: nothing to schedule

    _RUNTIME = HyperparameterScheduler._RUNTIME + ("_ema", "_link")

    def _reset_runtime(self):
        super()._reset_runtime()
        self._ema = None
        self._link = None
        self._swapped = False
        self._resumed = False
        self._started = False

    def on_train_begin(self, logs=None):
        model = self.model
        _weight_ema.check_no_keras_ema(model, "WeightEMA")
        super().on_train_begin(logs)
        guard = self._guard
        with _averaging.undo_on_error(guard):
            _averaging.claim_weights(
                guard, self, self.apply_at_end, self.evaluate_with_ema
            )
            warmup = None
            if self.use_warmup:
                warmup = EMAWarmup(
                    self.warmup_gamma, self.warmup_power, self.min_decay
                )
            base = 0.999 if isinstance(self.decay, Schedule) else self.decay
            self._ema = _weight_ema.WeightEMAProgram(
                model, base, self.every_n_steps, warmup
            )
            guard.add(self, self._abort_ema)
            self._ema.install()
            self._link = _averaging.BackupLink(
                "weight_ema",
                lambda backup: self._ema.state(),
                self._ema.load_state,
            )
            self._resumed = self._link.attach(self)
            guard.rebuild_train_function()

    def on_epoch_begin(self, epoch, logs=None):
        if self._ema is not None and not self._started:
            self._started = True  # every callback's on_train_begin ran
            resumed = self._link.check_resumed(self.model, "WeightEMA")
            if self._resumed and not resumed:
                self._ema.count.assign(0)
            self._ema.sync_seen()  # BackupAndRestore may have restored it
        super().on_epoch_begin(epoch, logs)

    def on_test_begin(self, logs=None):
        if self._ema is None or not self.evaluate_with_ema:
            return
        self.model  # on JAX: sync the train state
        if self._ema.updates_done() > 0:
            self._ema.averages.swap()
            self._swapped = True

    def on_test_end(self, logs=None):
        if self._swapped:
            self._ema.averages.swap()
            self._swapped = False

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        if self._ema is not None and logs is not None:
            logs["ema_decay"] = self._ema.last_decay_value()

    def on_train_end(self, logs=None):
        if self._ema is not None:
            self.model  # on JAX: sync the train state
            if self.apply_at_end and self._ema.updates_done() > 0:
                self._ema.averages.copy_to_weights()
            self._remove()
        super().on_train_end(logs)

    def _abort_ema(self):
        """After an exception in `fit`: the raw weights, a stock model."""
        if self._ema is None:
            return
        self.on_test_end()
        self._remove()

    def _remove(self):
        if self._link is not None:
            self._link.detach()
        self._ema.uninstall()
        self._ema = None
        if self._guard is not None:
            self._guard.rebuild_train_function()

    def get_config(self):
        decay = self.decay
        if isinstance(decay, Schedule):
            decay = _export.serialize(decay)
        return {
            "decay": decay,
            "use_warmup": self.use_warmup,
            "warmup_gamma": self.warmup_gamma,
            "warmup_power": self.warmup_power,
            "min_decay": self.min_decay,
            "every_n_steps": self.every_n_steps,
            "evaluate_with_ema": self.evaluate_with_ema,
            "apply_at_end": self.apply_at_end,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("decay"), dict):
            config["decay"] = _export.deserialize(config["decay"])
        return cls(**config)
