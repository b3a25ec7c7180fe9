"""`LRFinderResult`: the curve of a learning-rate range test."""

import numbers

import numpy as np

from keras_trainplus import _validation as v
from keras_trainplus.callbacks.lr_finder import _suggestions


def _curve(name, values):
    """A 1-D float64 array of real numbers (NaN and inf allowed)."""
    expected = "a 1-D list or array of numbers"
    if (
        isinstance(values, (str, bytes, dict, set))
        or values is None
        or isinstance(values, numbers.Number)
    ):
        v.fail_type(name, values, expected)
    try:
        array = np.asarray(values)
    except (TypeError, ValueError):  # e.g. ragged
        array = np.asarray([[]])
    if array.ndim != 1 or not (
        array.size == 0
        or np.issubdtype(array.dtype, np.integer)
        or np.issubdtype(array.dtype, np.floating)
    ):
        v.fail_type(name, values, expected)
    return array.astype(np.float64)


class LRFinderResult:
    """The outcome of a learning-rate range test (`LRFinder`, `find_lr`).

    Attributes:
        lrs: learning rate of every recorded update.
        losses: that update's own batch loss (raw, not a running mean).
        smoothed_losses: bias-corrected EMA of `losses` (the first value is
            the first loss).
        stop_reason: `"completed"`, `"diverged"`, `"non-finite loss"` or
            `"interrupted"` (fit ended before `num_steps`, e.g. the data ran
            out).
        start_lr, end_lr, num_steps, mode, smoothing: the test's settings.

    Suggestions (see `suggestion`) are computed from the smoothed curve,
    trimmed as fastai does, and are always finite and inside the tested
    range.

    Example:

    >>> import numpy as np
    >>> lrs = np.geomspace(1e-4, 1.0, 50)
    >>> losses = (np.log10(lrs) + 2.0) ** 2 + 1.0     # best near 1e-2
    >>> result = LRFinderResult(lrs, losses, smoothing=0.0)
    >>> 1e-4 <= result.suggestion("valley") <= 1e-2
    True

    Raises:
        ValueError: for `lrs` that are not finite positive numbers, `losses`
            that are not numbers (NaN and inf are kept), different lengths,
            a `smoothing` outside [0, 1) or other invalid settings.
    """

    def __init__(
        self,
        lrs,
        losses,
        smoothing=0.98,
        stop_reason="completed",
        start_lr=None,
        end_lr=None,
        num_steps=None,
        mode="exp",
    ):
        self.lrs = _curve("lrs", lrs)
        self.losses = _curve("losses", losses)
        if not np.all(np.isfinite(self.lrs) & (self.lrs > 0)):
            v.fail("lrs", lrs, "a list of finite learning rates > 0")
        if self.lrs.shape != self.losses.shape:
            v.fail(
                "losses", losses, f"as long as `lrs` ({len(self.lrs)} values)"
            )
        self.smoothing = v.real(
            "smoothing", smoothing, minimum=0, maximum=1, max_inclusive=False
        )
        self.smoothed_losses = _suggestions.smooth(self.losses, self.smoothing)
        self.stop_reason = v.string("stop_reason", stop_reason)
        self.start_lr = v.positive("start_lr", start_lr, allow_none=True)
        self.end_lr = v.positive("end_lr", end_lr, allow_none=True)
        self.num_steps = v.integer(
            "num_steps", num_steps, minimum=1, allow_none=True
        )
        self.mode = v.choice("mode", mode, ("exp", "linear"))

    def suggestion(self, method="valley"):
        """A suggested learning rate.

        Args:
            method: `"valley"` (fastai's default: halfway down the longest
                descent), `"steep"` (steepest descent against log LR),
                `"minimum"` (LR of the lowest loss / 10) or `"slide"`.

        Returns:
            A float inside the tested range.

        Raises:
            ValueError: for an unknown method or an empty curve.
        """
        method = v.choice("method", method, _suggestions.METHODS)
        return _suggestions.suggest(
            method, self.lrs, self.smoothed_losses, self.lrs
        )

    def suggestions(self):
        """All suggestions, ``{method: lr}``."""
        return {m: self.suggestion(m) for m in _suggestions.METHODS}

    def _plot_curves(self, ax):
        """The raw and smoothed losses, on a log LR axis."""
        finite = np.isfinite(self.smoothed_losses)
        ax.plot(
            self.lrs,
            self.losses,
            color="0.75",
            linewidth=1,
            label="loss per update",
        )
        ax.plot(
            self.lrs[finite],
            self.smoothed_losses[finite],
            color="C0",
            linewidth=2,
            label="smoothed loss",
        )
        ax.set_xscale("log")
        ax.set_xlabel("learning rate")
        ax.set_ylabel("loss")
        if finite.any():
            lo = float(np.min(self.smoothed_losses[finite]))
            first = float(self.smoothed_losses[finite][0])
            hi = max(first, lo) + 0.5 * abs(first - lo) + 1e-12
            pad = 0.1 * (hi - lo) + 1e-12
            ax.set_ylim(lo - pad, hi + pad)

    def _plot_suggestions(self, ax):
        """One marker per suggestion, on the smoothed curve."""
        finite = np.isfinite(self.smoothed_losses)
        markers = {"valley": "o", "steep": "s", "minimum": "v", "slide": "^"}
        for i, (method, lr) in enumerate(self.suggestions().items()):
            y = 0.0
            if finite.any():
                y = float(
                    np.interp(
                        np.log(lr),
                        np.log(self.lrs[finite]),
                        self.smoothed_losses[finite],
                    )
                )
            ax.plot(
                [lr],
                [y],
                markers[method],
                color=f"C{i + 1}",
                markersize=9,
                label=f"{method}: {lr:.2e}",
            )

    def plot(self, path=None, ax=None):
        """Plots loss against learning rate (log scale) with the suggestions
        marked. Needs matplotlib (`pip install keras-trainplus[plot]`).

        Args:
            path: optional file path; the figure is saved there (PNG, SVG...
                by extension).
            ax: optional matplotlib axes to draw on.

        Returns:
            The matplotlib `Figure`.

        Raises:
            ValueError: for a `path` that is not a file path.
            ImportError: without matplotlib.
        """
        path = v.path("path", path, allow_none=True)
        try:
            from matplotlib.figure import Figure
        except ImportError:
            raise ImportError(
                "LRFinderResult.plot needs matplotlib: "
                "pip install 'keras-trainplus[plot]'"
            ) from None
        if ax is None:
            fig = Figure(figsize=(7.0, 4.5), layout="constrained")
            ax = fig.add_subplot()
        else:
            fig = ax.figure
        self._plot_curves(ax)
        self._plot_suggestions(ax)
        ax.legend(loc="best", fontsize="small")
        ax.set_title(
            f"LR range test ({len(self.losses)} updates, {self.stop_reason})"
        )
        ax.grid(True, which="both", alpha=0.3)
        if path is not None:
            fig.savefig(path, dpi=110)
        return fig

    def __repr__(self):
        return (
            f"LRFinderResult({len(self.losses)} updates, "
            f"{self.stop_reason}, valley={self.suggestion():.3g})"
            if len(self.losses)
            else "LRFinderResult(empty)"
        )
