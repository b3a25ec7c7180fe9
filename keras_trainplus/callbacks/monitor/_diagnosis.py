"""`Diagnosis`: the monitor's warnings and plain-text report.

Rules (each warns once per kind and layer; `TrainingMonitor.diagnose`
lists every finding even with ``warn=False``):

* **non-finite gradient**: a layer's gradient holds NaN or inf. The
  layers are named nearest the output first: the backward pass carries a
  non-finite value from where it arises toward the input, so the first
  named is where it arose (or the loss, if the loss was not finite).
* **vanishing gradient**: ``grad_norm / weight_norm < VANISHING_RATIO``
  (1e-5) at `VANISHING_RECORDS` (3) records in a row.
* **exploding gradient**: ``grad_norm > EXPLODING_FACTOR`` (10) times the
  running median of the layer's last `MEDIAN_WINDOW` (50) finite records
  (from the 2nd record on),
  or an update larger than the weights (``update_ratio > 1``).
* **dead units**: ``dead_fraction > DEAD_FRACTION`` (0.9) at a record.

The report adds Karpathy's rule of thumb for the update-to-weight ratio
(about 1e-3; "A Recipe for Training Neural Networks", 2019): layers whose
median ratio is below 1e-5 or above 1e-1 are named.
"""

import collections
import warnings

import numpy as np

VANISHING_RATIO = 1e-5
VANISHING_RECORDS = 3
EXPLODING_FACTOR = 10.0
DEAD_FRACTION = 0.9
MEDIAN_WINDOW = 50


class Diagnosis:
    """Findings of one `fit` from the monitor's records."""

    def __init__(self, names, warn):
        self.names = list(names)
        self.warn = warn
        self.findings = []  # (kind, layer names, step, message)
        self._done = set()
        self._low = [0] * len(names)
        self._norms = [collections.deque(maxlen=MEDIAN_WINDOW) for _ in names]

    def _report(self, kind, layers, step, message):
        new = [x for x in layers if (kind, x) not in self._done]
        if not new:
            return
        self._done.update((kind, x) for x in new)
        self.findings.append((kind, new, step, message))
        if self.warn:
            warnings.warn(f"TrainingMonitor: {message}", RuntimeWarning, 3)

    def update(self, step, values, loss, finite):
        grad = values.get("grad_norm")
        weight = values.get("weight_norm")
        if grad is not None:
            self._non_finite(step, grad, loss, finite)
            self._exploding(step, grad, values.get("update_ratio"))
            if weight is not None:
                self._vanishing(step, grad, weight)
        dead = values.get("dead_fraction")
        broken = finite is not None and not finite.all()
        if dead is not None and not broken:
            for j, share in enumerate(dead):
                if share > DEAD_FRACTION:
                    name = self.names[j]
                    self._report(
                        "dead units",
                        [name],
                        step,
                        f"{share:.0%} of the units of layer {name!r} are 0 "
                        f"for every example of the batch at update {step} "
                        "(dead ReLUs: lower the learning rate, change the "
                        "initialisation, or use a leaky activation).",
                    )

    def _non_finite(self, step, grad, loss, finite):
        bad = ~np.isfinite(grad) if finite is None else ~finite
        if not bad.any():
            return
        layers = [self.names[j] for j in reversed(range(len(grad))) if bad[j]]
        if loss is None:
            where = "the loss was not recorded"
        elif np.isfinite(loss):
            where = f"the loss was finite: it arose in {layers[0]!r}"
        else:
            where = "the loss itself was not finite"
        self._report(
            "non-finite gradient",
            layers,
            step,
            f"non-finite gradient at update {step} in layers "
            f"{', '.join(repr(x) for x in layers)} (nearest the output "
            f"first; {where}).",
        )

    def _exploding(self, step, grad, ratio):
        for j, r in enumerate([] if ratio is None else ratio):
            if np.isfinite(r) and r > 1:
                name = self.names[j]
                self._report(
                    "exploding gradient",
                    [name],
                    step,
                    f"exploding gradient in layer {name!r} at update {step}: "
                    f"the update is {r:.3g}x the weights' norm "
                    "(update/weight ratio above 1; about 1e-3 is healthy).",
                )
        for j, norm in enumerate(grad):
            history = self._norms[j]
            if np.isfinite(norm):
                if history:
                    median = float(np.median(history))
                    if median > 0 and norm > EXPLODING_FACTOR * median:
                        name = self.names[j]
                        self._report(
                            "exploding gradient",
                            [name],
                            step,
                            f"exploding gradient in layer {name!r} at update "
                            f"{step}: norm {norm:.3g} is {norm / median:.0f}x "
                            f"its running median {median:.3g}.",
                        )
                history.append(float(norm))

    def _vanishing(self, step, grad, weight):
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = grad / weight
        for j, r in enumerate(ratio):
            self._low[j] = self._low[j] + 1 if r < VANISHING_RATIO else 0
            if self._low[j] == VANISHING_RECORDS:
                name = self.names[j]
                self._report(
                    "vanishing gradient",
                    [name],
                    step,
                    f"vanishing gradient in layer {name!r}: gradient/weight "
                    f"norm ratio {r:.2g} < {VANISHING_RATIO:g} for "
                    f"{VANISHING_RECORDS} records (to update {step}).",
                )

    def report(self, steps, arrays):
        """The plain-text report (see `TrainingMonitor.diagnose`)."""
        if not steps:
            return "TrainingMonitor: nothing recorded yet."
        lines = [
            f"TrainingMonitor: {len(steps)} records, updates {steps[0]} to "
            f"{steps[-1]}, {len(self.names)} layers."
        ]
        for kind, layers, step, message in self.findings:
            lines.append(f"- {message}")
        ratio = arrays.get("update_ratio")
        if ratio is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                median = np.nanmedian(ratio, axis=0)
            for name, r in zip(self.names, median):
                if r < 1e-5 or r > 1e-1:
                    lines.append(
                        f"- layer {name!r}: median update/weight ratio "
                        f"{r:.2g} (about 1e-3 is healthy)."
                    )
        if len(lines) == 1:
            lines.append("- no problem found.")
        return "\n".join(lines)
