"""Plots of schedules and of the values a `fit` actually applied.

Needs matplotlib (`pip install keras-trainplus[plot]`). Figures are
created without pyplot (no GUI backend needed) and returned; pass `path`
to save them.
"""

import numpy as np

from keras_trainplus import _validation as v
from keras_trainplus.schedules.schedule import as_schedule

__all__ = ["plot_history", "plot_schedule"]


def _figure(rows=1, height=3.2):
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError(
            "Plotting needs matplotlib: pip install 'keras-trainplus[plot]'"
        ) from None
    fig = Figure(figsize=(7.0, height * rows), layout="constrained")
    axes = fig.subplots(rows, 1, squeeze=False)[:, 0]
    return fig, list(axes)


def plot_schedule(
    schedule, steps, path=None, log_scale=False, title=None, ax=None, **named
):
    """Plots one or more schedules over optimizer steps ``0 .. steps - 1``.

    Args:
        schedule: a keras_trainplus schedule (or a Keras
            `LearningRateSchedule`, or a callable step -> value), or None
            when only `named` schedules are given.
        steps: int > 0, the number of steps to plot.
        path: optional file path to save the figure (PNG by extension).
        log_scale: bool, log y axis.
        title: optional title.
        ax: optional matplotlib axes.
        **named: more schedules to plot, labelled by their keyword
            (e.g. ``momentum=OneCycle.momentum(...)``), each in its own
            panel.

    Returns:
        The matplotlib `Figure`.

    Example:

    ```python
    from keras_trainplus import schedules as S
    keras_trainplus.plot_schedule(
        S.OneCycle(0.1, 1000), 1000, path="one_cycle.png",
        momentum=S.OneCycle.momentum(0.85, 0.95, 1000))
    ```

    Raises:
        ValueError: for `steps` < 1, nothing to plot, other invalid
            arguments, or a schedule giving a value that is not a number.
        ImportError: without matplotlib.
    """
    steps = v.integer("steps", steps, minimum=1)
    path = v.path("path", path, allow_none=True)
    log_scale = v.boolean("log_scale", log_scale)
    title = _title(title)
    series = _series(schedule, named)
    if ax is None:
        fig, axes = _figure(len(series))
    else:
        fig, axes = ax.figure, [ax] * len(series)
    x = np.arange(steps)
    for axis, (name, (argument, fn)) in zip(axes, series.items()):
        axis.plot(x, _values(argument, fn, x), color="C0", linewidth=1.8)
        axis.set_ylabel("learning rate" if name == "value" else name)
        axis.set_xlabel("step (updates applied)")
        if log_scale:
            axis.set_yscale("log")
        axis.grid(True, alpha=0.3)
    if title:
        axes[0].set_title(title)
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig


def _series(schedule, named):
    """{panel label: (argument name, schedule)} of what to plot."""
    series = {}
    for name, sched in [("schedule", schedule)] + list(named.items()):
        if sched is None and name == "schedule":
            continue
        if not callable(sched):
            sched = as_schedule(sched, name)
        series["value" if name == "schedule" else name] = (name, sched)
    if not series:
        v.fail("schedule", schedule, "a schedule (or named schedules) to plot")
    return series


def _values(argument, fn, steps):
    """The schedule's host values at `steps`, checked to be numbers."""
    return np.array(
        [
            v.real(
                f"{argument}({int(i)})",
                _host(fn(int(i))),
                allow_inf=True,
                what="a plottable value",
            )
            for i in steps
        ]
    )


def _title(title):
    if title is not None and not isinstance(title, str):
        v.fail_type("title", title, "a string or None")
    return title


def _host(value):
    """A plotted value as a number (tensors converted)."""
    import keras

    if keras.ops.is_tensor(value):
        value = keras.ops.convert_to_numpy(value)
    return v.scalar(value)


def _check_series(key, values):
    """A History entry must be a list of numbers (None and NaN allowed)."""
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        array = None
    if (
        isinstance(values, (str, bytes, dict))
        or array is None
        or array.ndim != 1
    ):
        v.fail_type(f"history[{key!r}]", values, "a list of numbers")


def plot_history(history, keys=None, path=None, title=None):
    """Plots the values a `fit` applied, per epoch, from its History.

    keras_trainplus callbacks write the values they applied into the logs
    (``learning_rate``, ``momentum``, ``dropout_rate``, ``gradient_clip``,
    ``gradient_accumulation``, ``gradient_noise``, augmentation knobs such
    as ``"mix_up.alpha"``), so History has them;
    each gets its own panel, next to the losses.

    Args:
        history: a `keras.callbacks.History` (what `fit` returns) or its
            ``.history`` dict.
        keys: the keys to plot; by default every logged key that is not a
            loss or metric of the model, then ``loss`` (and ``val_loss``).
        path: optional file path to save the figure.
        title: optional title.

    Returns:
        The matplotlib `Figure`.

    Example:

    ```python
    history = model.fit(x, y, epochs=10, callbacks=[OneCycleLR(0.1)])
    keras_trainplus.plot_history(history, path="applied.png")
    ```

    Raises:
        ValueError: if a key is missing, there is nothing to plot, or for
            other invalid arguments (e.g. a History entry that is not a
            list of numbers).
        ImportError: without matplotlib.
    """
    logs = getattr(history, "history", history)
    if not isinstance(logs, dict) or not logs:
        v.fail_type(
            "history", history, "a History or a non-empty dict of lists"
        )
    path = v.path("path", path, allow_none=True)
    title = _title(title)
    keys = _history_keys(logs, keys)
    losses = [k for k in keys if k in ("loss", "val_loss")]
    panels = [k for k in keys if k not in losses] + (["loss"] if losses else [])
    fig, axes = _figure(len(panels), height=2.4)
    for axis, key in zip(axes, panels):
        _plot_series(axis, logs, losses if key == "loss" else [key], key)
    from matplotlib.ticker import MaxNLocator

    for axis in axes:
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[-1].set_xlabel("epoch")
    if title:
        axes[0].set_title(title)
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig


# History keys that hold scheduled values (besides "*rate*" and knobs).
_SCHEDULED = (
    "momentum",
    "beta_1",
    "beta_2",
    "weight_decay",
    "gradient_clip",
    "gradient_accumulation",
    "gradient_noise",
    "lr",
    "effective_learning_rate",
)


def _history_keys(logs, keys):
    """The keys to plot: checked, or by default every scheduled value then
    the losses."""
    if keys is not None:
        keys = v.sequence("keys", keys, "a list of History keys or None")
        if not keys or not all(isinstance(k, str) for k in keys):
            v.fail_type("keys", keys, "a non-empty list of History keys")
    for key, values in logs.items():
        if keys is None or key in keys:
            _check_series(key, values)
    if keys is None:
        scheduled = [
            k
            for k in logs
            if not k.startswith("val_")
            and k != "loss"
            and ("rate" in k or "." in k or k in _SCHEDULED)
        ]
        keys = scheduled + [k for k in ("loss", "val_loss") if k in logs]
    missing = [k for k in keys if k not in logs]
    if missing or not keys:
        raise ValueError(
            f"Keys not in the history: {missing}. Available: {sorted(logs)}"
        )
    return keys


def _plot_series(axis, logs, names, label):
    """One panel: each series per epoch, non-finite epochs (clipping off)
    marked at 0."""
    for i, name in enumerate(names):
        values = np.array(logs[name], dtype=np.float64)
        epochs = np.arange(len(values))
        finite = np.isfinite(values)
        axis.plot(
            epochs[finite],
            values[finite],
            "o-",
            color=f"C{i}",
            markersize=3,
            label=name,
        )
        if (~finite).any():
            axis.plot(
                epochs[~finite],
                np.zeros((~finite).sum()),
                "x",
                color="C3",
                label=f"{name}: off (inf)",
            )
    axis.set_ylabel(label)
    axis.grid(True, alpha=0.3)
    values = np.array(logs[names[0]], dtype=np.float64)
    if len(names) > 1 or (~np.isfinite(values)).any():
        axis.legend(fontsize="small")
