"""RETURNN's `learning_rate_control` decision logic, as a pure-Python state
machine (no Keras). `NewbobLRControl` drives it from callbacks.

Epochs here are RETURNN's, 1-based: record ``n`` is Keras epoch ``n - 1``.
``lr_for_epoch(n)`` is decided before epoch ``n`` trains, from the records
of epochs ``< n`` only. All arithmetic is Python float64; the history keeps
Python floats (never values read back from a float32 variable).

Where RETURNN crashes, this port defines the behaviour:

* a zero denominator in a relative error follows IEEE arithmetic (as RETURNN
  does when fed NumPy scores): ``x / 0 = +-inf``, ``0 / 0 = nan``, instead of
  raising ``ZeroDivisionError``;
* with `relative_lr`, the relative error is divided by ``lr /
  initial_lr`` only when both are > 0; with a learning rate of 0 (either
  one) it is used unscaled, where RETURNN raises ``ZeroDivisionError``;
* numpy scalars and integers are accepted as floats; a monitored value
  that is not a number (or not a scalar) is a `ValueError` naming its key;
* a multi-epoch mean that is both above the decay threshold and below the
  grow threshold (possible only when the grow threshold is set above the
  decay threshold) decays instead of failing an assertion.
"""

import math
import numbers
import warnings

import numpy as np

from keras_trainplus import _validation as v

CONTROLS = {
    "constant": "constant",
    "newbob": "newbob_rel",
    "newbob_rel": "newbob_rel",
    "newbob_relative": "newbob_rel",
    "newbob_abs": "newbob_abs",
    "newbob_multi_epoch": "newbob_multi_epoch",
}


def _div(num, den):
    """IEEE division (no ZeroDivisionError)."""
    if den != 0:
        return num / den
    if num == 0 or math.isnan(num):
        return math.nan
    return math.copysign(math.inf, num)


def _score(key, value, n):
    """A monitored value as a float, or a clear error naming its key."""
    number = v.scalar(value)
    if isinstance(number, numbers.Real) and not isinstance(number, bool):
        return float(number)
    raise ValueError(
        f"The monitored value {key!r} of epoch {n - 1} must be a scalar "
        f"number (a loss or metric). Received: {key}={value!r}"
    )


def _factor(name, factor, lr):
    """`lr` times the factor, or the callable's result, checked."""
    if not callable(factor):
        return float(lr * factor)
    return v.target_value("learning_rate", factor(lr), f"{name}({lr!r})")


def select_error_key(scores, measure=None):
    """RETURNN's `get_error_key` over one epoch's flat score dict.

    Args:
        scores: dict of score name -> float (non-empty).
        measure: None, a key, or a list of keys tried in order.

    Returns:
        The selected key.
    """
    if list(scores) == ["old_format_score"]:
        return "old_format_score"
    if measure is not None:
        for key in [measure] if isinstance(measure, str) else list(measure):
            for k in (key, key + "_output"):
                if k in scores:
                    return k
    for k in ("dev_score", "dev_score_output"):
        if k in scores:
            return k
    keys = sorted(scores)
    for k in keys:
        if k == "dev_score_output/output" or k.startswith(
            "dev_score_output/output_"
        ):
            return k
    for prefix in ("dev_score_output/", "dev_"):
        for k in keys:
            if k.startswith(prefix):
                return k
    for k in ("train_score", "train_score_output"):
        if k in scores:
            return k
    return keys[0]


class NewbobController:
    """The per-epoch learning-rate decisions of RETURNN's newbob family.

    Args:
        control: "constant", "newbob_rel", "newbob_abs" or
            "newbob_multi_epoch" (aliases accepted).
        initial_lr: LR of epoch 1 and the reference of `relative_lr`.
        learning_rates: dict {epoch (1-based): lr} of predefined LRs.
        decay, growth: float factors or callables lr -> lr.
        relative_error_threshold, error_threshold, grow_threshold: floats.
        num_epochs, update_interval: ints (multi-epoch).
        relative_lr, div_by_old: bools.
        min_epochs_per_new_lr: int.
        min_lr: float.
        error_key: a callable scores -> key (RETURNN's selection) or a
            fixed key (native mode: only that key is ever compared).
        sign: +1 when lower scores are better, -1 when higher are.
    """

    def __init__(
        self,
        control,
        initial_lr,
        learning_rates=None,
        decay=0.5,
        growth=1.0,
        relative_error_threshold=-0.01,
        error_threshold=-0.01,
        grow_threshold=None,
        num_epochs=5,
        update_interval=None,
        relative_lr=False,
        div_by_old=False,
        min_epochs_per_new_lr=0,
        min_lr=0.0,
        error_key=None,
        sign=1,
    ):
        self.control = CONTROLS[control]
        self.initial_lr = float(initial_lr)
        self.decay = decay
        self.growth = growth
        self.relative_error_threshold = float(relative_error_threshold)
        self.error_threshold = float(error_threshold)
        self.grow_threshold = (
            self.relative_error_threshold
            if grow_threshold is None
            else float(grow_threshold)
        )
        self.num_epochs = int(num_epochs)
        self.update_interval = (
            self.num_epochs if update_interval is None else int(update_interval)
        )
        self.relative_lr = bool(relative_lr)
        self.div_by_old = bool(div_by_old)
        self.min_epochs_per_new_lr = int(min_epochs_per_new_lr)
        self.min_lr = float(min_lr)
        self.error_key = error_key
        self.sign = sign
        # n -> {"lr": float, "scores": {key: float}, "predefined": bool}
        self.records = {}
        self.predefined = {
            int(n): float(lr) for n, lr in (learning_rates or {}).items()
        }
        self.last_decision = None
        self._warned_both = False

    # -- records ----------------------------------------------------------

    def load(self, records):
        """Installs loaded records, then the predefined LRs (a loaded,
        non-zero LR wins over a predefined one, as in RETURNN)."""
        self.records = {
            int(n): {
                "lr": r.get("lr"),
                "scores": dict(r.get("scores") or {}),
                "predefined": bool(r.get("predefined")),
            }
            for n, r in records.items()
        }
        for n, lr in self.predefined.items():
            rec = self.records.get(n)
            if rec is None:
                self.records[n] = {"lr": lr, "scores": {}, "predefined": True}
            elif not rec["lr"]:
                rec["lr"] = lr
                rec["predefined"] = True

    def set_scores(self, n, scores):
        """Records epoch `n`'s scores (NaN and inf are kept: IEEE)."""
        checked = {k: _score(k, x, n) for k, x in scores.items()}
        rec = self.records.setdefault(
            n, {"lr": None, "scores": {}, "predefined": False}
        )
        rec["scores"].update(checked)

    def _before(self, n):
        return sorted(e for e in self.records if e < n)

    # -- scores -----------------------------------------------------------

    def score(self, n):
        """(key, value) of epoch n, or None if it has no scores."""
        rec = self.records.get(n)
        if rec is None or not rec["scores"]:
            return None
        scores = rec["scores"]
        if callable(self.error_key):
            key = self.error_key(scores)
        else:
            key = self.error_key
            if key not in scores:
                return None
        return key, scores[key]

    def _lr_at_or_before(self, n):
        epochs = [
            e
            for e in self.records
            if e <= n and self.records[e]["lr"] is not None
        ]
        return self.records[max(epochs)]["lr"] if epochs else None

    def relative_error(self, old_n, new_n):
        old, new = self.score(old_n), self.score(new_n)
        if old is None or new is None or old[0] != new[0]:
            return None
        den = abs(old[1]) if self.div_by_old else abs(new[1])
        rel = _div(self.sign * (new[1] - old[1]), den)
        if self.relative_lr:
            lr = self._lr_at_or_before(new_n)
            # A zero LR has no relative size: the error stays unscaled.
            if lr is not None and lr > 0 and self.initial_lr > 0:
                rel = rel / (lr / self.initial_lr)
        return rel

    def difference(self, old_n, new_n):
        old, new = self.score(old_n), self.score(new_n)
        if old is None or new is None or old[0] != new[0]:
            return None
        return self.sign * (new[1] - old[1])

    # -- decisions --------------------------------------------------------

    def _apply(self, lr, decay, grow=None):
        if grow is None:
            grow = not decay
        if decay and grow:
            if not self._warned_both:
                warnings.warn(
                    "newbob_multi_epoch: the mean relative error is above the "
                    "decay threshold and below the grow threshold (the grow "
                    "threshold is set above the decay threshold); decaying. "
                    "RETURNN fails an assertion here.",
                    stacklevel=3,
                )
                self._warned_both = True
            grow = False
        if decay:
            self.last_decision = "decay"
            lr = _factor("decay", self.decay, lr)
            if lr < self.min_lr:
                lr = self.min_lr
        elif grow:
            self.last_decision = "grow"
            lr = _factor("growth", self.growth, lr)
        return lr

    def _hold(self, n):
        """`min_num_epochs_per_new_lr`: the LR to hold, or None."""
        k = self.min_epochs_per_new_lr
        if k <= 1:
            return None
        last = self._before(n)[-k:]
        if not last:
            return None
        lrs = [self.records[e]["lr"] for e in last]
        if len(set(lrs)) >= 2 or len(last) < k:
            return lrs[-1]
        return None

    def _rule(self, n):
        before = self._before(n)
        if not before:
            return self.initial_lr
        lr = self.records[before[-1]]["lr"]
        if self.control == "constant" or len(before) < 2:
            return lr
        if self.control in ("newbob_rel", "newbob_abs"):
            prev2, prev = before[-2], before[-1]
            if self.control == "newbob_rel":
                r = self.relative_error(prev2, prev)
                if r is None:
                    return lr
                return self._apply(lr, r > self.relative_error_threshold)
            d = self.difference(prev2, prev)
            if d is None:
                return lr
            return self._apply(lr, d > self.error_threshold)
        # newbob_multi_epoch
        k = self.update_interval
        if k > 1 and n % k != 1:
            return lr
        window = before[-(self.num_epochs + 1) :]
        if len(window) <= 1:
            return lr
        rels = [self.relative_error(a, b) for a, b in zip(window, window[1:])]
        if any(r is None for r in rels):
            return lr
        with np.errstate(all="ignore"):
            mean = float(np.mean(rels))
        return self._apply(
            lr, mean > self.relative_error_threshold, mean < self.grow_threshold
        )

    def lr_for_epoch(self, n):
        """RETURNN's `get_learning_rate_for_epoch(n)` (n is 1-based)."""
        self.last_decision = None
        rec = self.records.get(n)
        if rec is not None and rec["lr"] is not None:
            self.last_decision = "recorded"
            return rec["lr"]
        held = self._hold(n)
        lr = held if held is not None else self._rule(n)
        lr = float(lr)
        if rec is None:
            self.records[n] = {"lr": lr, "scores": {}, "predefined": False}
        else:
            rec["lr"] = lr
        return lr


def controller_for(callback, initial):
    """The `NewbobController` of a `NewbobLRControl` for one `fit`: its
    arguments, the score key (RETURNN's selection for a RETURNN config,
    else `monitor`) and the sign of its `mode`."""
    returnn = callback._returnn_config is not None
    if returnn:
        measure = callback._error_measure

        def error_key(scores):
            return select_error_key(scores, measure)
    else:
        error_key = callback.monitor
    return NewbobController(
        callback.control,
        initial,
        learning_rates=callback.learning_rates,
        decay=callback.decay,
        growth=callback.growth,
        relative_error_threshold=callback.relative_error_threshold,
        error_threshold=callback.error_threshold,
        grow_threshold=callback.relative_error_grow_threshold,
        num_epochs=callback.multi_num_epochs,
        update_interval=callback.multi_update_interval,
        relative_lr=callback.relative_error_relative_lr,
        div_by_old=callback.relative_error_div_by_old,
        min_epochs_per_new_lr=callback.min_num_epochs_per_new_lr,
        min_lr=callback.min_lr,
        error_key=error_key,
        sign=1 if returnn else callback._sign(),
    )
