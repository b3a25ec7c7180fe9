"""`GradualUnfreezing`: layers start training epoch by epoch, top first
(ULMFiT), without recompiling."""

import keras

from keras_trainplus import _export
from keras_trainplus import _validation as v
from keras_trainplus._internals.layers import iter_layers
from keras_trainplus.callbacks import _arguments
from keras_trainplus.callbacks.hyperparameter_scheduler import (
    HyperparameterScheduler,
)
from keras_trainplus.knobs.lr_multiplier import PREFIX
from keras_trainplus.knobs.lr_multiplier import config_name
from keras_trainplus.knobs.lr_multiplier import find_layer
from keras_trainplus.knobs.lr_multiplier import label
from keras_trainplus.knobs.lr_multiplier import trainable_layers
from keras_trainplus.schedules.per_epoch import PerEpoch


@_export.register
class GradualUnfreezing(HyperparameterScheduler):
    """Unfreezes layers epoch by epoch, without recompiling.

    Gradual unfreezing (Howard & Ruder 2018, ULMFiT; fastai's `freeze_to`).
    A frozen layer has learning-rate multiplier 0: its variables and
    optimizer slots stay bit-identical, no weight decay, its gradient out
    of clipping, so unfreezing resumes as if it had been
    ``trainable=False``. A frozen `BatchNormalization` runs in inference
    mode (Keras's convention for ``trainable=False``), switched at epoch
    starts through a variable: no retrace. ``trainable`` flags are never
    touched: checkpoints load as plain models.

    `schedule` maps epochs (0-based) to what trains from then on: an int
    ``n`` (the top ``n`` layers with trainable weights; more: all),
    ``"all"``, or a list of layer names (exactly those; a nested model's
    name stands for its layers). Before the first key all layers train; a
    layer the user set ``trainable=False`` never does. ULMFiT's recipe is
    ``{0: 1, 1: 2, 2: 3, 3: "all"}``. With `DiscriminativeLR` the factors
    multiply. A preset of the driver (targets ``"lr_multiplier:<layer>"``,
    logged as the effective multiplier, and ``logs["unfrozen_layers"]``):
    [docs/fine_tuning.md](../docs/fine_tuning.md).

    Args:
        schedule: dict ``{epoch: n | "all" | [layer names]}``.

    Example:

    ```python
    model.fit(x, y, epochs=6, callbacks=[
        keras_trainplus.callbacks.GradualUnfreezing(
            {0: 1, 1: 2, 2: 3, 3: "all"}),
    ])
    ```

    Raises:
        ValueError: for a schedule that is not such a dict, a negative
            epoch or count; at `fit`, for a layer name the model does not
            have (naming it).
    """

    def __init__(self, schedule):
        self.schedule = _check_schedule(schedule)
        self._unfrozen = {}
        super().__init__(_arguments.built_at_fit, origin="fit")

    def _resolve_schedules(self):
        model = self.model
        layers = trainable_layers(model)
        training = {
            epoch: self._training(model, layers, epoch, what)
            for epoch, what in self.schedule.items()
        }
        self._unfrozen = {e: len(t) for e, t in training.items()}
        out, self.options = {}, {}
        for i, layer in enumerate(layers):
            values = {e: float(i in t) for e, t in training.items()}
            if any(value == 0.0 for value in values.values()):
                target = PREFIX + label(model, layer)
                out[target] = PerEpoch(values)
                self.options[target] = {
                    "argument": "schedule",
                    "layer": layer,
                    "own_only": isinstance(layer, keras.Model),
                }
        return out

    def _training(self, model, layers, epoch, what):
        """The positions in `layers` of those that train from `epoch` on."""
        if what == "all":
            return set(range(len(layers)))
        if isinstance(what, int):
            return set(range(max(len(layers) - what, 0), len(layers)))
        out = set()
        for name in what:
            found = find_layer(model, name, f"schedule[{epoch!r}]")
            ids = {id(x) for x in [found, *iter_layers(found)]}
            out |= {i for i, x in enumerate(layers) if id(x) in ids}
        return out

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        if logs is not None and self._unfrozen:
            keys = [e for e in self._unfrozen if e <= epoch]
            count = self._unfrozen[max(keys)] if keys else None
            if count is None:
                count = len(trainable_layers(self.model))
            logs["unfrozen_layers"] = float(count)

    def get_config(self):
        return {
            "schedule": {
                epoch: what
                if isinstance(what, (int, str))
                else [config_name(x) for x in what]
                for epoch, what in self.schedule.items()
            }
        }

    @classmethod
    def from_config(cls, config):
        schedule = {int(k): w for k, w in config["schedule"].items()}
        return cls(schedule)


def _check_schedule(schedule):
    expected = 'a non-empty dict {epoch: n | "all" | [layer names]}'
    if not isinstance(schedule, dict) or not schedule:
        v.fail_type("schedule", schedule, expected)
    out = {}
    for epoch, what in schedule.items():
        epoch = v.integer("schedule (an epoch key)", epoch, minimum=0)
        where = f"schedule[{epoch!r}]"
        if isinstance(what, str):
            if what != "all":
                v.fail(where, what, '"all", a count or a list of layer names')
        elif isinstance(what, (list, tuple)):
            for x in what:
                if not (
                    isinstance(x, keras.layers.Layer)
                    or (isinstance(x, str) and x)
                ):
                    v.fail_type(where, what, "a list of layer names")
            what = list(what)
        elif isinstance(what, int) and not isinstance(what, bool):
            what = v.integer(where, what, minimum=0)
        else:
            v.fail_type(where, what, '"all", a count or a list of layer names')
        out[epoch] = what
    return dict(sorted(out.items()))
