"""A frozen `BatchNormalization` layer: inference mode, statistics kept.

While a layer's learning-rate multiplier is 0 (`LRMultiplierKnob`), the
optimizer leaves its gamma and beta alone; its moving mean and variance are
updated by its own forward pass, so this control switches the layer to
Keras's convention for ``trainable=False``: it normalizes with the moving
statistics and does not update them. The switch is a hidden variable read
inside the compiled step (no retrace), set at every epoch start from the
multiplier of the epoch's first update.
"""

from keras import ops

from keras_trainplus import _internals as internals
from keras_trainplus.knobs.knob import Knob

_CONTROLS = {}  # id(layer) -> control


def batch_norm_layers(layer):
    """`layer` and the layers below it that are BatchNormalization."""
    from keras.layers import BatchNormalization

    below = [layer, *internals.layers.iter_layers(layer)]
    return [x for x in below if isinstance(x, BatchNormalization)]


def acquire(layer, model, source):
    """The control of `layer`, attached, with `source` registered."""
    control = _CONTROLS.get(id(layer))
    if control is None:
        control = _CONTROLS[id(layer)] = FrozenBatchNorm(layer, model)
    control.sources[id(source)] = False
    return control


class FrozenBatchNorm:
    """Inference mode for one BatchNormalization layer while any of its
    sources (the multiplier knobs of this layer) holds 0."""

    def __init__(self, layer, model):
        self.layer = layer
        self.model = model
        self.flag = Knob(0.0, name=f"{layer.name}_frozen", model=model)
        self.sources = {}
        self.flag.attach(layer)
        internals.layers.set_layer_call(layer, self.call)

    def set(self, source, frozen):
        self.sources[id(source)] = bool(frozen)
        value = 1.0 if any(self.sources.values()) else 0.0
        if float(self.flag) != value:
            self.flag.assign(value, model=self.model)

    def release(self, source):
        self.sources.pop(id(source), None)
        if self.sources:
            return
        internals.layers.set_layer_call(self.layer, None)
        self.flag.detach(self.layer)
        _CONTROLS.pop(id(self.layer), None)

    def call(self, inputs, training=None, mask=None):
        layer = self.layer
        stock = type(layer).call
        if not training:
            return stock(layer, inputs, training=training, mask=mask)
        frozen = self.flag.variable.value > 0.5
        if internals.gradient_accumulation.conditional_update_allowed():
            return ops.cond(
                frozen,
                lambda: stock(layer, inputs, training=False, mask=mask),
                lambda: stock(layer, inputs, training=True, mask=mask),
            )
        # JAX and tf.distribute: both modes, the frozen one kept by
        # selection (the inference output reads the statistics before the
        # training pass updates them; those are then put back).
        statistics = [layer.moving_mean, layer.moving_variance]
        before = [ops.copy(v.value) for v in statistics]
        inference = stock(layer, inputs, training=False, mask=mask)
        trained = stock(layer, inputs, training=True, mask=mask)
        for variable, old in zip(statistics, before):
            variable.assign(ops.where(frozen, old, variable.value))
        return ops.where(frozen, inference, trained)
