"""`_internals.fit_loop`: the running fit's CallbackList is found from a
callback, and its wrapped hooks report exceptions but not control flow."""

import keras
import numpy as np
import pytest

from keras_trainplus._internals import fit_loop


class Finder(keras.callbacks.Callback):
    found = None

    def on_train_begin(self, logs=None):
        Finder.found = fit_loop.calling_fit(self.model)


def test_calling_fit_finds_the_callback_list_and_iterator():
    m = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    m.compile(optimizer="sgd", loss="mse")
    x = np.ones((4, 2), "float32")
    m.fit(x, x[:, :1], epochs=1, verbose=0, callbacks=[Finder()])
    callback_list, iterator = Finder.found
    assert isinstance(callback_list, keras.callbacks.CallbackList)
    assert hasattr(iterator, "catch_stop_iteration")
    assert fit_loop.calling_fit(m) == (None, None)  # no fit running


def test_guarded_hooks_report_errors_not_control_flow():
    errors = []

    class Raises(keras.callbacks.Callback):
        error = RuntimeError("boom")

        def on_epoch_begin(self, epoch, logs=None):
            raise self.error

    callback_list = keras.callbacks.CallbackList([Raises()])
    unhook = fit_loop.guard_callback_list(
        callback_list, lambda: errors.append(1), None, None, None
    )
    with pytest.raises(RuntimeError):
        callback_list.on_epoch_begin(0)
    Raises.error = StopIteration()
    with pytest.raises(StopIteration):
        callback_list.on_epoch_begin(0)
    assert errors == [1]
    unhook()
    assert "on_epoch_begin" not in vars(callback_list)


def test_guard_of_attaches_and_detaches():
    callback_list = keras.callbacks.CallbackList([])
    guard = object()
    fit_loop.set_guard_of(callback_list, guard)
    assert fit_loop.guard_of(callback_list) is guard
    fit_loop.set_guard_of(callback_list, None)
    assert fit_loop.guard_of(callback_list) is None
