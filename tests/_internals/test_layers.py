"""`_internals.layers`: hidden state, the layer tree, `call` on the
instance, the spatial noise shape."""

import keras
import numpy as np

from keras_trainplus._internals import layers


def test_hidden_state_is_a_variable_but_not_a_weight():
    layer = keras.layers.Dropout(0.5)
    layer.build((None, 4))
    variable = keras.Variable(0.5, trainable=False)
    layers.attach_hidden_state(layer, variable)
    layers.attach_hidden_state(layer, variable)  # idempotent
    assert sum(v is variable for v in layer.variables) == 1
    assert not any(w is variable for w in layer.weights)
    layers.detach_hidden_state(layer, variable)
    assert not any(v is variable for v in layer.variables)


def test_iter_layers_finds_nested_layers_once():
    inner = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    shared = keras.layers.Dense(2)
    inputs = keras.Input((3,))
    outputs = shared(inner(inputs))
    model = keras.Model(inputs, outputs)
    found = layers.iter_layers(model)
    assert inner.layers[0] in found and shared in found
    assert len(found) == len({id(x) for x in found})


def test_set_layer_call_on_the_instance_only():
    a, b = keras.layers.Dropout(0.0), keras.layers.Dropout(0.0)
    x = np.ones((2, 3), "float32")
    layers.set_layer_call(a, lambda inputs, training=False: inputs * 2)
    assert np.allclose(a(x), 2.0) and np.allclose(b(x), 1.0)
    layers.set_layer_call(a, None)
    assert np.allclose(a(x), 1.0)


def test_spatial_noise_shape_keeps_channels():
    layer = keras.layers.SpatialDropout1D(0.5)
    shape = layers.spatial_noise_shape(layer, np.ones((2, 5, 3), "float32"))
    assert tuple(int(d) for d in shape) == (2, 1, 3)


def test_untracked_attribute_is_not_state():
    layer = keras.layers.Dense(2)
    layer.build((None, 3))
    generator = keras.random.SeedGenerator(1)
    before = len(layer.variables)
    layers.set_untracked_attribute(layer, "extra", generator)
    assert layer.extra is generator and len(layer.variables) == before
