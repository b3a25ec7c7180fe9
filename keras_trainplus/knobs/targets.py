"""The targets a driver can schedule, by name: `bind` makes the knob of a
target for one model."""

from keras_trainplus.knobs.augmentation import AugmentationKnob
from keras_trainplus.knobs.dropout_rate import DropoutRateKnob
from keras_trainplus.knobs.gradient_clip import GradientClipKnob
from keras_trainplus.knobs.learning_rate import LearningRateKnob
from keras_trainplus.knobs.optimizer_attribute import OptimizerAttributeKnob

_TARGETS = {
    "learning_rate": lambda model, **kw: LearningRateKnob(model, **kw),
    "lr": lambda model, **kw: LearningRateKnob(model, log_key="lr"),
    "momentum": lambda model, **kw: OptimizerAttributeKnob(model, "momentum"),
    "beta_1": lambda model, **kw: OptimizerAttributeKnob(model, "beta_1"),
    "beta_2": lambda model, **kw: OptimizerAttributeKnob(model, "beta_2"),
    "weight_decay": lambda model, **kw: OptimizerAttributeKnob(
        model, "weight_decay"
    ),
    "gradient_clip": lambda model, **kw: GradientClipKnob(model, **kw),
    "dropout": lambda model, **kw: DropoutRateKnob(model, **kw),
}


def target_names():
    return sorted(_TARGETS) + [
        "dropout:<layer name>",
        "<augmentation layer name>.<knob>",
    ]


def check_target_name(name):
    if not isinstance(name, str):
        raise ValueError(
            f"A hyperparameter target must be a string. Received: {name!r}"
        )
    if name.startswith("dropout:") and len(name) > len("dropout:"):
        return name
    layer, dot, knob = name.rpartition(".")
    if dot and layer and knob:
        return name
    if name not in _TARGETS:
        raise ValueError(
            f"Unknown hyperparameter target {name!r}. Known targets: "
            f"{', '.join(repr(n) for n in target_names())}."
        )
    return name


def bind(name, model, **options):
    check_target_name(name)
    if name.startswith("dropout:"):
        layer = name[len("dropout:") :]
        return DropoutRateKnob(
            model, layers=[layer], log_key=f"dropout_rate:{layer}"
        )
    if "." in name:
        layer, _, knob = name.rpartition(".")
        return AugmentationKnob(model, layer, knob)
    return _TARGETS[name](model, **options)
