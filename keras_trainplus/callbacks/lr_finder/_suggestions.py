"""Loss smoothing and learning-rate suggestions for the range test.

All functions are pure NumPy, work on the recorded curve only, and always
return a finite learning rate inside the tested range.

* smoothing: an exponential moving average with bias correction, so the
  first smoothed value equals the first loss (Lightning's version is off by
  one step and starts at about half the loss);
* `minimum`: the LR of the lowest smoothed loss, divided by 10 (fastai);
* `steep`: the left end of the steepest descent of the smoothed loss
  against log(LR) (fastai's "steep"; Lightning differentiates against the
  raw LR, which over-weights tiny LRs, its issue #21141);
* `valley`: fastai's default since 2.4: inside the longest run of
  decreasing smoothed losses, a point about halfway down;
* `slide`: fastai's "slide": walk left from the end until the slopes
  `lr_diff` points apart agree within `thresh`.

The curve is trimmed as fastai does (the first tenth and the last 5
points, when there are enough) and cut at the first non-finite value.
"""

import numpy as np

METHODS = ("valley", "steep", "minimum", "slide")


def smooth(losses, beta):
    """Bias-corrected EMA: ``avg = beta * avg + (1 - beta) * loss``,
    ``smoothed_k = avg_k / (1 - beta**k)``. NaN/inf propagate."""
    out, avg = [], 0.0
    for k, loss in enumerate(losses, start=1):
        avg = beta * avg + (1.0 - beta) * float(loss)
        out.append(avg / (1.0 - beta**k) if beta < 1.0 else float(loss))
    return np.asarray(out, dtype=np.float64)


def trimmed(lrs, losses):
    """The part of the curve suggestions look at (see module doc)."""
    lrs = np.asarray(lrs, dtype=np.float64)
    losses = np.asarray(losses, dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(losses))
    end = bad[0] if bad.size else len(losses)
    lrs, losses = lrs[:end], losses[:end]
    n = len(losses)
    begin = n // 10
    stop = n - 5 if n - 5 - begin >= 5 else n
    return lrs[begin:stop], losses[begin:stop]


def _fallback(lrs, losses):
    if len(losses) == 0:
        return None
    return float(lrs[int(np.argmin(losses))])


def minimum(lrs, losses):
    if len(losses) == 0:
        return None
    return float(lrs[int(np.argmin(losses))]) / 10.0


def steep(lrs, losses):
    if len(losses) < 3:
        return _fallback(lrs, losses)
    slopes = np.diff(losses) / np.diff(np.log(lrs))
    return float(lrs[int(np.argmin(slopes))])


def valley(lrs, losses):
    n = len(losses)
    if n < 3:
        return _fallback(lrs, losses)
    # Length of the longest strictly decreasing subsequence ending at i.
    run = np.ones(n, dtype=int)
    for i in range(1, n):
        earlier = losses[:i] > losses[i]
        if earlier.any():
            run[i] = 1 + run[:i][earlier].max()
    end = int(np.argmax(run))
    start = end - int(run[end])
    third = (end - start) / 3
    index = start + int(third) + int(third / 2)
    return float(lrs[min(max(index, 0), n - 1)])


def slide(lrs, losses, lr_diff=15, thresh=0.005, adjust_value=1.0):
    n = len(losses)
    if n <= lr_diff + 1:
        return _fallback(lrs, losses)
    grad = np.gradient(losses)
    right, left = n - 1, n - 1 - lr_diff
    found = lrs[left]
    while left >= 0 and abs(grad[right] - grad[left]) > thresh:
        found = lrs[left]
        right -= 1
        left -= 1
    return float(found) * adjust_value


_FUNCTIONS = {
    "valley": valley,
    "steep": steep,
    "minimum": minimum,
    "slide": slide,
}


def suggest(method, lrs, smoothed, tested_lrs):
    """A suggestion, clipped into the tested range and always finite."""
    if method not in _FUNCTIONS:
        raise ValueError(
            f"Unknown suggestion method {method!r}; one of {METHODS}."
        )
    tested = np.asarray(tested_lrs, dtype=np.float64)
    if tested.size == 0:
        raise ValueError("No update was recorded: nothing to suggest.")
    lo, hi = float(np.min(tested)), float(np.max(tested))
    x, y = trimmed(lrs, smoothed)
    value = _FUNCTIONS[method](x, y)
    if value is None or not np.isfinite(value):
        # Not even a finite point in the trimmed curve: use the whole curve,
        # then the lowest LR tested.
        finite = np.isfinite(smoothed)
        value = (
            _fallback(np.asarray(lrs)[finite], np.asarray(smoothed)[finite])
            if finite.any()
            else lo
        )
    return float(min(max(value, lo), hi))
