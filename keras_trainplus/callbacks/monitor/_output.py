"""The monitor's heat maps (matplotlib) and TensorBoard events
(tensorboardX: a writer without TensorFlow, so it works on JAX and torch).
"""

import numpy as np

from keras_trainplus.plotting import _figure

# Colour scales: norms and ratios span decades (log); the mean has a sign
# (symmetric log); shares are linear in [0, 1].
_LINEAR = ("dead_fraction", "clipped")


def plot_heat_maps(steps, arrays, names, path=None):
    """One heat map per statistic: layers (input at the top) x recorded
    updates. Returns the matplotlib `Figure`; saves it to `path`."""
    from matplotlib import colors

    stats = [s for s in arrays if arrays[s].size]
    if not stats:
        raise ValueError("TrainingMonitor.plot: nothing recorded yet.")
    fig, axes = _figure(len(stats), height=0.6 + 0.25 * len(names))
    for ax, stat in zip(axes, stats):
        data = np.asarray(arrays[stat], dtype=float).T  # layers x records
        finite = data[np.isfinite(data)]
        if stat in _LINEAR:
            norm = colors.Normalize(0.0, 1.0)
        elif stat == "activation_mean":
            scale = np.abs(finite[finite != 0]) if finite.size else []
            norm = colors.SymLogNorm(
                linthresh=float(np.min(scale)) if len(scale) else 1e-6
            )
        else:
            positive = finite[finite > 0]
            norm = (
                colors.LogNorm(float(positive.min()), float(positive.max()))
                if positive.size and positive.min() < positive.max()
                else None
            )
        image = ax.imshow(
            np.ma.masked_invalid(data), aspect="auto", norm=norm,
            interpolation="nearest", cmap="viridis",
        )  # fmt: skip
        ax.set_title(stat)
        ax.set_yticks(range(len(names)), names, fontsize=7)
        ticks = np.unique(np.linspace(0, len(steps) - 1, 6).astype(int))
        ax.set_xticks(ticks, [str(steps[i]) for i in ticks])
        ax.set_xlabel("update")
        fig.colorbar(image, ax=ax)
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig


class TensorBoardWriter:
    """Writes the records as scalars (``<stat>/<layer>`` at each recorded
    update) and, per epoch, histograms of each layer's weights and of each
    statistic over the layers, with tensorboardX's `SummaryWriter`."""

    def __init__(self, log_dir):
        try:
            from tensorboardX import SummaryWriter
        except ImportError:
            raise ImportError(
                "TrainingMonitor(log_dir=...) writes TensorBoard events with "
                "tensorboardX: pip install 'keras-trainplus[monitor]'"
            ) from None
        self.writer = SummaryWriter(str(log_dir))

    def records(self, names, records):
        for step, values, loss, _ in records:
            for stat, row in values.items():
                for name, value in zip(names, row):
                    if np.isfinite(value):
                        self.writer.add_scalar(
                            f"{stat}/{name}", float(value), step
                        )
            if loss is not None and np.isfinite(loss):
                self.writer.add_scalar("loss", float(loss), step)

    def epoch(self, step, watched, values):
        for name, variables in zip(watched.names, watched.variables):
            weights = [np.ravel(np.asarray(w.numpy())) for w in variables]
            if weights:
                self.writer.add_histogram(
                    f"weights/{name}", np.concatenate(weights), step
                )
        for stat, row in values.items():
            row = np.asarray(row, dtype=float)
            if np.isfinite(row).any():
                self.writer.add_histogram(stat, row[np.isfinite(row)], step)
        self.writer.flush()

    def close(self):
        self.writer.close()
