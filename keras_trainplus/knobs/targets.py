"""The targets a driver can schedule, by name: `bind` makes the knob of a
target for one model."""

from keras_trainplus.knobs.augmentation import AugmentationKnob
from keras_trainplus.knobs.dropout_rate import DropoutRateKnob
from keras_trainplus.knobs.ema_decay import EMADecayKnob
from keras_trainplus.knobs.gradient_accumulation import GradientAccumulationKnob
from keras_trainplus.knobs.gradient_clip import GradientClipKnob
from keras_trainplus.knobs.gradient_noise import GradientNoiseKnob
from keras_trainplus.knobs.learning_rate import LearningRateKnob
from keras_trainplus.knobs.lr_multiplier import PREFIX as _MULTIPLIER
from keras_trainplus.knobs.lr_multiplier import LRMultiplierKnob
from keras_trainplus.knobs.optimizer_attribute import OptimizerAttributeKnob
from keras_trainplus.knobs.user_knob import UserKnob
from keras_trainplus.knobs.user_knob import is_knob
from keras_trainplus.knobs.weight_noise import WeightNoiseKnob

_TARGETS = {
    "learning_rate": LearningRateKnob,
    "lr": lambda model, log_key="lr", **kw: LearningRateKnob(
        model, log_key, **kw
    ),
    "gradient_accumulation": GradientAccumulationKnob,
    "gradient_clip": GradientClipKnob,
    "gradient_noise": GradientNoiseKnob,
    "dropout": DropoutRateKnob,
    "ema_decay": EMADecayKnob,
    "weight_noise": WeightNoiseKnob,
}
_OPTIMIZER_ATTRIBUTES = ("momentum", "beta_1", "beta_2", "weight_decay")


def target_names():
    return sorted(list(_TARGETS) + list(_OPTIMIZER_ATTRIBUTES)) + [
        "dropout:<layer name>",
        "weight_noise:<layer name>",
        "lr_multiplier:<layer name>",
        "<augmentation layer name>.<knob>",
        "a keras_trainplus.Knob",
    ]


def check_target_name(name):
    if not isinstance(name, str):
        raise ValueError(
            "A hyperparameter target must be a name or a "
            f"`keras_trainplus.Knob`. Received: {name!r}"
        )
    for prefix in ("dropout:", "weight_noise:", _MULTIPLIER):
        if name.startswith(prefix) and len(name) > len(prefix):
            return name
    layer, dot, knob = name.rpartition(".")
    if dot and layer and knob:
        return name
    if name not in _TARGETS and name not in _OPTIMIZER_ATTRIBUTES:
        raise ValueError(
            f"Unknown hyperparameter target {name!r}. Known targets: "
            f"{', '.join(repr(n) for n in target_names())}."
        )
    return name


def bind(target, model, **options):
    """The knob of `target` (a name or a `Knob`) for `model`, with the
    driver's `options` of that target (`log_key`, `mode`, `layers`)."""
    if is_knob(target):
        return UserKnob(model, target, **options)
    check_target_name(target)
    if target.startswith("dropout:"):
        layer = target[len("dropout:") :]
        options.setdefault("log_key", f"dropout_rate:{layer}")
        return DropoutRateKnob(model, layers=[layer], **options)
    if target.startswith("weight_noise:"):
        options.setdefault("log_key", target)
        return WeightNoiseKnob(model, layers=[target[13:]], **options)
    if target.startswith(_MULTIPLIER):
        return LRMultiplierKnob(model, target[len(_MULTIPLIER) :], **options)
    if "." in target:
        layer, _, knob = target.rpartition(".")
        return AugmentationKnob(model, layer, knob, **options)
    if target in _OPTIMIZER_ATTRIBUTES:
        return OptimizerAttributeKnob(model, target, **options)
    return _TARGETS[target](model, **options)
