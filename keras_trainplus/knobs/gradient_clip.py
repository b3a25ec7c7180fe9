"""`GradientClipKnob`: a gradient-clipping threshold applied to the
aggregated gradient, and `clip_gradients` (the in-graph clip)."""

import math
import warnings

from keras import ops

from keras_trainplus import _internals as internals
from keras_trainplus.knobs.optimizer_side import OptimizerSideKnob

CLIP_MODES = ("global_norm", "norm", "value")


class GradientClipKnob(OptimizerSideKnob):
    """A gradient-clipping threshold (+inf = no clipping), applied to the
    aggregated gradient."""

    allow_infinite = True

    def __init__(self, model, mode="global_norm", log_key="gradient_clip"):
        super().__init__(model)
        if mode not in CLIP_MODES:
            raise ValueError(
                f"Unknown clip mode {mode!r}; one of {CLIP_MODES}."
            )
        self.mode = mode
        self.log_key = log_key
        for opt in self.optimizers:
            own = {
                k: getattr(opt, k, None)
                for k in ("clipnorm", "global_clipnorm", "clipvalue")
            }
            own = {k: v for k, v in own.items() if v}
            if own:
                warnings.warn(
                    f"The optimizer `{opt.name}` has its own clipping {own}; "
                    "while a keras_trainplus clip schedule is installed it "
                    "replaces it (and clips the aggregated gradient under "
                    "tf.distribute, which Keras's own clipping does not).",
                    stacklevel=4,
                )

    def initial_base(self):
        return math.inf

    def value_keys(self):
        return self._optimizer_keys("gradient_clip", "gradient clipping")

    def install(self, schedule, offset):
        threshold = self._make_program(schedule, offset)
        mode = self.mode

        def clip(grads, step):
            return clip_gradients(grads, threshold(step), mode)

        for opt in self.optimizers:
            internals.optimizer_update.set_gradient_program(opt, "clip", clip)

    def uninstall(self):
        for opt in self.optimizers:
            internals.optimizer_update.set_gradient_program(opt, "clip", None)
        self._detach_knob()


def clip_gradients(grads, threshold, mode):
    """Clips `grads` (a list, None entries allowed) at a tensor threshold."""
    present = [g for g in grads if g is not None]
    if not present:
        return grads
    if mode == "value":
        return [
            None
            if g is None
            else ops.clip(
                g, -ops.cast(threshold, g.dtype), ops.cast(threshold, g.dtype)
            )
            for g in grads
        ]
    if mode == "norm":
        out = []
        for g in grads:
            if g is None:
                out.append(None)
                continue
            norm = ops.sqrt(ops.sum(ops.square(ops.cast(g, "float32"))))
            out.append(g * ops.cast(_scale(norm, threshold), g.dtype))
        return out
    total = ops.sqrt(
        sum(ops.sum(ops.square(ops.cast(g, "float32"))) for g in present)
    )
    scale = _scale(total, threshold)
    return [None if g is None else g * ops.cast(scale, g.dtype) for g in grads]


def _scale(norm, threshold):
    """thr / norm when norm > thr, else 1 (an infinite threshold, a zero or
    a NaN norm leave the gradient unchanged)."""
    threshold = ops.cast(threshold, "float32")
    exceeds = norm > threshold
    safe = ops.where(exceeds, norm, 1.0)
    return ops.where(exceeds, threshold / safe, 1.0)
