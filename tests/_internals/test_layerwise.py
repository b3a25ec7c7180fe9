"""`_internals.layerwise`: the slots of every Keras optimizer are found,
multipliers install and remove cleanly."""

import keras
import numpy as np
import pytest
from keras import ops

from keras_trainplus import _internals as internals

OPTIMIZERS = {
    "SGD": lambda: keras.optimizers.SGD(0.1, momentum=0.9),
    "Adam": lambda: keras.optimizers.Adam(amsgrad=True),
    "AdamW": lambda: keras.optimizers.AdamW(),
    "RMSprop": lambda: keras.optimizers.RMSprop(momentum=0.5, centered=True),
    "Adagrad": keras.optimizers.Adagrad,
    "Adadelta": keras.optimizers.Adadelta,
    "Adamax": keras.optimizers.Adamax,
    "Nadam": keras.optimizers.Nadam,
    "Ftrl": keras.optimizers.Ftrl,
    "Lion": keras.optimizers.Lion,
    "Lamb": keras.optimizers.Lamb,
    "Adafactor": keras.optimizers.Adafactor,
}
# Optimizer state shared by all variables (not a slot of one); Nadam's
# running product of momentum factors is an unnamed variable.
GLOBAL = {"iteration", "learning_rate"}


def _variables():
    return [
        keras.Variable(np.ones((3, 4), "float32"), name="kernel"),
        keras.Variable(np.ones((4,), "float32"), name="bias"),
    ]


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_slots_cover_the_optimizer_state(name):
    optimizer = OPTIMIZERS[name]()
    variables = _variables()
    optimizer.build(variables)
    slots = internals.optimizer_slots.slots_by_index(optimizer)
    assert len(slots) == 2
    found = [id(s) for per in slots for s in per]
    assert len(found) == len(set(found))
    shared = {id(getattr(optimizer, "_u_product", None))}
    rest = [
        v
        for v in optimizer.variables
        if id(v) not in set(found) and id(v) not in shared
    ]
    assert {v.name for v in rest} <= GLOBAL, [v.name for v in rest]
    for index, variable in enumerate(variables):
        for slot in slots[index]:
            assert variable.name in slot.name or variable.path in slot.path


def test_multiplier_installs_and_removes_its_layers():
    optimizer = keras.optimizers.AdamW(0.1, weight_decay=0.1)
    variables = _variables()
    optimizer.build(variables)
    key = object()
    internals.layerwise.set_lr_multiplier(
        optimizer, key, variables[:1], lambda step: ops.convert_to_tensor(0.5)
    )
    layers = internals.method_layers.method_layers
    assert "lr_multiplier" in layers(optimizer, "update_step")
    assert "frozen_gradients" in layers(optimizer, "_backend_apply_gradients")
    grads = [ops.ones((3, 4)), ops.ones((4,))]
    optimizer.apply(grads, variables)
    internals.layerwise.set_lr_multiplier(optimizer, key, None, None)
    for method in (
        "update_step",
        "_apply_weight_decay",
        "_backend_apply_gradients",
    ):
        assert method not in optimizer.__dict__
    assert not any(k.startswith("_keras_trainplus") for k in optimizer.__dict__)
    # Half the step on the kernel: AdamW's first step is lr * sign + decay.
    kernel, bias = (ops.convert_to_numpy(v) for v in variables)
    np.testing.assert_allclose(1 - kernel, (1 - bias[0]) * 0.5, rtol=1e-6)
