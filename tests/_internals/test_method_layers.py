"""`_internals.method_layers`: layers over optimizer methods compose by
rank whatever the installation order; substitutions nest."""

import keras

from keras_trainplus._internals import method_layers


def _tagging(tag, calls):
    def factory(inner):
        def fn(*args):
            calls.append(tag)
            return inner(*args)

        return fn

    return factory


def test_layers_compose_by_rank_and_remove_independently():
    optimizer = keras.optimizers.SGD(0.1)
    calls = []
    method = "_clip_gradients"
    method_layers.set_method_layer(
        optimizer, method, "outer", _tagging("outer", calls), rank=1
    )
    method_layers.set_method_layer(
        optimizer, method, "inner", _tagging("inner", calls), rank=0
    )
    assert optimizer._clip_gradients([1.0]) == [1.0]
    assert calls == ["outer", "inner"]
    method_layers.set_method_layer(optimizer, method, "outer", None)
    calls.clear()
    optimizer._clip_gradients([1.0])
    assert calls == ["inner"]
    method_layers.set_method_layer(optimizer, method, "inner", None)
    assert method not in optimizer.__dict__
    assert not any(k.startswith("_keras_trainplus") for k in optimizer.__dict__)


def test_nested_substitution_restores_the_original():
    optimizer = keras.optimizers.AdamW(weight_decay=0.1)
    with method_layers.substituted(optimizer, {"weight_decay": 0.5}):
        with method_layers.substituted(optimizer, {"weight_decay": 0.25}):
            assert optimizer.weight_decay == 0.25
            assert method_layers.unsubstituted(optimizer, "weight_decay") == 0.1
    assert optimizer.weight_decay == 0.1
