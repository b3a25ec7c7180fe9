"""keras-tuner integration: callback hyperparameters as tunable as layer
sizes.

keras-tuner deep-copies the callbacks given to `search` for every
execution (ours are deep-copy safe), and a hyperparameter first declared in
`HyperModel.fit` joins the search space only during trial 1, so trial 1
always runs with its default. The idiomatic fix, packaged here: declare
the callback's hyperparameters in `build(hp)`, build the callbacks from the
same `hp` in `fit`.

* `TunableCallbacks(build_model, build_callbacks)`: a `keras_tuner.HyperModel`
  doing exactly that.
* `one_cycle_lr(hp)`, `cyclic_lr(hp)`, `newbob(hp)`, `dropout_scheduler(hp)`:
  the package's callbacks built from `hp` with sensible search ranges
  (override any range; names are prefixed so several can coexist).

Needs the `tuner` extra (keras-tuner, plus tensorboard on TF).
"""

from keras_trainplus import _validation as v
from keras_trainplus import callbacks as C
from keras_trainplus.callbacks.lr_finder.lr_finder_result import LRFinderResult

__all__ = [
    "TunableCallbacks",  # noqa: F822 (defined lazily)
    "cyclic_lr",
    "dropout_scheduler",
    "lr_search_range",
    "newbob",
    "one_cycle_lr",
]


def _check_hp(hp, prefix):
    if not all(hasattr(hp, m) for m in ("Fixed", "Float", "Int", "Choice")):
        v.fail_type("hp", hp, "a `keras_tuner.HyperParameters`")
    return v.string("prefix", prefix)


def _bounds(argument, bounds, check):
    """`(value, None)` for a fixed value or `(low, high)`, each checked by
    `check(name, value)`; low <= high."""
    if isinstance(bounds, (list, tuple)):
        if len(bounds) != 2:
            v.fail_type(argument, bounds, "a fixed value or a (low, high) pair")
        low = check(f"{argument}[0]", bounds[0])
        high = check(f"{argument}[1]", bounds[1])
        if high < low:
            v.fail(argument, bounds, "a (low, high) pair with low <= high")
        return low, high
    return check(argument, bounds), None


def _float(hp, argument, name, bounds, sampling="linear", **limits):
    """A float hyperparameter (`argument`: the argument as written)."""
    if sampling == "log":
        limits.setdefault("minimum", 0)
        limits["min_inclusive"] = False

    def check(arg, x):
        return v.real(arg, x, **limits)

    low, high = _bounds(argument, bounds, check)
    if high is None:
        return hp.Fixed(name, low)
    return hp.Float(name, low, high, sampling=sampling)


def _int(hp, argument, name, bounds, minimum):
    def check(arg, x):
        return v.integer(arg, x, minimum=minimum)

    low, high = _bounds(argument, bounds, check)
    if high is None:
        return hp.Fixed(name, low)
    return hp.Int(name, low, high)


def lr_search_range(result, method="valley", factor=10.0):
    """A learning-rate search range around an LR finder's suggestion.

    Args:
        result: an `LRFinderResult` (from `keras_trainplus.find_lr`).
        method: the suggestion to centre on ("valley", "steep", "minimum",
            "slide").
        factor: float > 1. The range is ``(s / factor, s * factor)``,
            clipped to the LRs the finder tested.

    Returns:
        ``(low, high)`` floats, for e.g. ``one_cycle_lr(hp, max_lr=...)``.

    Example:

    ```python
    result = keras_trainplus.find_lr(build_model(), x, y)
    max_lr = keras_trainplus.tuner.lr_search_range(result)
    callbacks = lambda hp: [keras_trainplus.tuner.one_cycle_lr(
        hp, max_lr=max_lr)]
    ```

    Raises:
        ValueError: for a `factor` <= 1 or an unknown `method`.
    """
    factor = v.real("factor", factor, minimum=1, min_inclusive=False)
    if not isinstance(result, LRFinderResult):
        v.fail_type(
            "result",
            result,
            "an `LRFinderResult` (from `keras_trainplus.find_lr`)",
        )
    suggestion = float(result.suggestion(method))
    lrs = [float(v) for v in result.lrs]
    low = max(suggestion / factor, min(lrs))
    high = min(suggestion * factor, max(lrs))
    if not high > low:
        high = low * factor
    return low, high


def one_cycle_lr(
    hp, max_lr=(1e-3, 1.0), pct_start=(0.1, 0.5), prefix="one_cycle", **kwargs
):
    """`OneCycleLR` with `max_lr` (log scale) and `pct_start` from `hp`.

    Args:
        hp: `keras_tuner.HyperParameters`.
        max_lr: (low, high) search range, or a fixed float.
        pct_start: (low, high) range, or a fixed float.
        prefix: hyperparameter name prefix.
        **kwargs: other `OneCycleLR` arguments.

    Example:

    ```python
    def build_callbacks(hp):
        return [keras_trainplus.tuner.one_cycle_lr(hp)]
    ```

    Raises:
        ValueError: for an invalid range, `hp` or `prefix`, and from
            `OneCycleLR` for invalid values.
    """
    prefix = _check_hp(hp, prefix)
    return C.OneCycleLR(
        max_lr=_float(hp, "max_lr", f"{prefix}_max_lr", max_lr, "log"),
        pct_start=_float(
            hp,
            "pct_start",
            f"{prefix}_pct_start",
            pct_start,
            minimum=0,
            maximum=1,
            min_inclusive=False,
            max_inclusive=False,
        ),
        **kwargs,
    )


def cyclic_lr(
    hp,
    base_lr=(1e-5, 1e-2),
    max_lr=(1e-3, 1.0),
    step_size_up=(500, 4000),
    mode=("triangular", "triangular2", "exp_range"),
    prefix="cyclic",
    **kwargs,
):
    """`CyclicLR` with `base_lr`, `max_lr` (log scale), `step_size_up` and
    `mode` from `hp` (`max_lr` is kept >= `base_lr`).

    Args:
        hp: `keras_tuner.HyperParameters`.
        base_lr, max_lr: (low, high) ranges or fixed floats.
        step_size_up: (low, high) int range or a fixed int.
        mode: the modes to choose from (a tuple) or one fixed mode.
        prefix: hyperparameter name prefix.
        **kwargs: other `CyclicLR` arguments.

    Example:

    ```python
    callbacks = [keras_trainplus.tuner.cyclic_lr(hp, step_size_up=2000)]
    ```

    Raises:
        ValueError: for an invalid range, `hp` or `prefix`, and from
            `CyclicLR` for invalid values.
    """
    prefix = _check_hp(hp, prefix)
    mode = _modes(mode, ("triangular", "triangular2", "exp_range"))
    base = _float(hp, "base_lr", f"{prefix}_base_lr", base_lr, "log")
    peak = _float(hp, "max_lr", f"{prefix}_max_lr", max_lr, "log")
    step = _int(
        hp, "step_size_up", f"{prefix}_step_size_up", step_size_up, minimum=1
    )
    if isinstance(mode, str):
        chosen = hp.Fixed(f"{prefix}_mode", mode)
    else:
        chosen = hp.Choice(f"{prefix}_mode", mode)
    return C.CyclicLR(
        base_lr=min(base, peak),
        max_lr=max(base, peak),
        step_size_up=step,
        mode=chosen,
        **kwargs,
    )


def _modes(mode, modes):
    """One mode (a string) or a non-empty list of modes to choose from."""
    if isinstance(mode, str):
        return v.choice("mode", mode, modes)
    chosen = [
        v.choice(f"mode[{i}]", m, modes)
        for i, m in enumerate(
            v.sequence("mode", mode, "a mode or a tuple of modes")
        )
    ]
    if not chosen:
        v.fail("mode", mode, "a mode or a non-empty tuple of modes")
    return chosen


def newbob(
    hp,
    decay=(0.3, 0.9),
    relative_error_threshold=(-0.05, 0.0),
    prefix="newbob",
    **kwargs,
):
    """`NewbobLRControl` with `decay` and `relative_error_threshold` from
    `hp`.

    Args:
        hp: `keras_tuner.HyperParameters`.
        decay: (low, high) range or a fixed float.
        relative_error_threshold: (low, high) range or a fixed float.
        prefix: hyperparameter name prefix.
        **kwargs: other `NewbobLRControl` arguments (e.g. `monitor`).

    Example:

    ```python
    callbacks = [keras_trainplus.tuner.newbob(hp, monitor="val_loss")]
    ```

    Raises:
        ValueError: for an invalid range, `hp` or `prefix`, and from
            `NewbobLRControl` for invalid values.
    """
    prefix = _check_hp(hp, prefix)
    return C.NewbobLRControl(
        decay=_float(
            hp,
            "decay",
            f"{prefix}_decay",
            decay,
            minimum=0,
            min_inclusive=False,
        ),
        relative_error_threshold=_float(
            hp,
            "relative_error_threshold",
            f"{prefix}_relative_error_threshold",
            relative_error_threshold,
        ),
        **kwargs,
    )


def dropout_scheduler(
    hp, rate=(0.0, 0.5), start_epoch=(0, 3), prefix="dropout", **kwargs
):
    """`DropoutScheduler` with no dropout for the first `start_epoch`
    epochs, then `rate` (RETURNN's "disable dropout initially").

    Args:
        hp: `keras_tuner.HyperParameters`.
        rate: (low, high) range or a fixed float.
        start_epoch: (low, high) int range or a fixed int.
        prefix: hyperparameter name prefix.
        **kwargs: other `DropoutScheduler` arguments (e.g. `layers`).

    Example:

    ```python
    callbacks = [keras_trainplus.tuner.dropout_scheduler(hp)]
    ```

    Raises:
        ValueError: for an invalid range, `hp` or `prefix`, and from
            `DropoutScheduler` for invalid values.
    """
    prefix = _check_hp(hp, prefix)
    value = _float(
        hp,
        "rate",
        f"{prefix}_rate",
        rate,
        minimum=0,
        maximum=1,
        max_inclusive=False,
    )
    start = _int(
        hp, "start_epoch", f"{prefix}_start_epoch", start_epoch, minimum=0
    )
    schedule = {0: 0.0, start: value} if start > 0 else {0: value}
    return C.DropoutScheduler(schedule, **kwargs)


_DOC = """A keras-tuner `HyperModel` whose callbacks are tuned too.

    `build(hp)` builds the model and also calls `build_callbacks(hp)`, so
    every callback hyperparameter is declared before trial 1 runs (declared
    only in `fit`, trial 1 would always use the defaults). `fit(hp, model,
    ...)` builds the callbacks again from the same `hp` and appends them to
    the callbacks given to `search`.

    Args:
        build_model: function ``hp -> compiled keras.Model``.
        build_callbacks: function ``hp -> list of callbacks``.
        **kwargs: `keras_tuner.HyperModel` arguments (`name`, `tunable`).

    Example:

    ```python
    hypermodel = keras_trainplus.tuner.TunableCallbacks(
        build_model,
        lambda hp: [keras_trainplus.tuner.one_cycle_lr(hp),
                    keras_trainplus.tuner.dropout_scheduler(hp)])
    tuner = keras_tuner.RandomSearch(hypermodel, objective="val_loss",
                                     max_trials=10)
    tuner.search(x, y, validation_split=0.2, epochs=5)
    ```

    Raises:
        ImportError: without keras-tuner installed.
        ValueError: if `build_model` or `build_callbacks` is not callable.
    """


def _make_class():
    try:
        import keras_tuner
    except ImportError as e:  # depends on the extra
        raise ImportError(
            "keras_trainplus.tuner.TunableCallbacks needs keras-tuner: "
            "pip install 'keras-trainplus[tuner]'"
        ) from e

    class TunableCallbacks(keras_tuner.HyperModel):
        __doc__ = _DOC

        def __init__(self, build_model, build_callbacks, **kwargs):
            if not callable(build_model) or not callable(build_callbacks):
                raise ValueError(
                    "`build_model` and `build_callbacks` must be callables "
                    f"of `hp`. Received: build_model={build_model!r}, "
                    f"build_callbacks={build_callbacks!r}"
                )
            super().__init__(**kwargs)
            self.build_model = build_model
            self.build_callbacks = build_callbacks

        def build(self, hp):
            self.build_callbacks(hp)  # declares their hyperparameters
            return self.build_model(hp)

        def fit(self, hp, model, *args, callbacks=None, **kwargs):
            callbacks = list(callbacks or []) + list(self.build_callbacks(hp))
            return model.fit(*args, callbacks=callbacks, **kwargs)

    TunableCallbacks.__module__ = __name__
    return TunableCallbacks


def __getattr__(name):
    # keras-tuner (and, on TF, tensorboard) is imported on first use only.
    if name == "TunableCallbacks":
        cls = _make_class()
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
