"""`fit` loop internals: undoing on every way out of `fit`.

Keras 3.15 calls `on_train_end` only when `fit` ends normally. To undo what
callbacks installed when an exception (KeyboardInterrupt included) leaves
`fit`, `callbacks/_fit_guard.py` needs a frame on the exception's way out.
Everything `fit` calls goes through one of: the `CallbackList` it created
(every callback hook, validation's test hooks too), ``model.train_function``,
``model.evaluate`` (validation) and the epoch iterator's
`catch_stop_iteration` (entered around every data fetch). Each is wrapped
on the instance for the duration of one `fit`; nothing in Keras is patched
globally. The running `fit`'s `CallbackList` and epoch iterator are found
on the call stack.
"""

import sys

import keras

from keras_trainplus._internals.version import hook
from keras_trainplus._internals.version import require

_CALLBACK_LIST_HOOKS = (
    "on_epoch_begin",
    "on_epoch_end",
    "on_train_batch_begin",
    "on_train_batch_end",
    "on_test_begin",
    "on_test_end",
    "on_test_batch_begin",
    "on_test_batch_end",
    "on_train_end",
)


_CONTROL_FLOW = ("StopIteration", "OutOfRangeError")


_GUARDED = "_keras_trainplus_guarded"


@hook("3.15")
def calling_fit(model, max_depth=50):
    """``(callback_list, epoch_iterator)`` of the `fit` call running
    callbacks of `model`, or ``(None, None)`` when a callback is driven by
    hand (no `fit` on the stack). `epoch_iterator` is None if not found."""
    frame = sys._getframe(1)
    for _ in range(max_depth):
        if frame is None:
            break
        if "self" in frame.f_code.co_varnames:
            owner = frame.f_locals.get("self")
            if (
                isinstance(owner, keras.callbacks.CallbackList)
                and getattr(owner, "_model", None) is model
            ):
                return owner, _epoch_iterator_above(frame.f_back)
        frame = frame.f_back
    return None, None


def _epoch_iterator_above(frame, max_depth=4):
    """The `epoch_iterator` local of `fit`, the first frame above the
    `CallbackList` call that has one (guard wrappers may sit between)."""
    for _ in range(max_depth):
        if frame is None:
            return None
        it = frame.f_locals.get("epoch_iterator")
        if hasattr(type(it), "catch_stop_iteration"):
            return it
        frame = frame.f_back
    return None


def _is_control_flow(error):
    return type(error).__name__ in _CONTROL_FLOW


def _guarded(fn, on_error, after=None):
    def guarded(*args, **kwargs):
        try:
            result = fn(*args, **kwargs)
        except BaseException as error:
            if not _is_control_flow(error):
                on_error()
            raise
        if after is not None:
            after()
        return result

    if hasattr(fn, "__dict__"):  # keep attributes callers may read
        guarded.__dict__.update(fn.__dict__)
    guarded.__dict__[_GUARDED] = fn
    return guarded


@hook("3.15")
def guard_callback_list(
    callback_list, on_error, on_train_end, after_epoch_begin, after_batch_begin
):
    """Wraps the hooks of the `CallbackList` of a running `fit` (which lives
    as long as that call), and the `on_train_begin` of its callbacks:
    `on_error()` runs when an exception passes one,
    and the other functions after the callbacks' `on_train_end`,
    `on_epoch_begin` and `on_train_batch_begin` returned. Returns the
    function that removes the wrappers."""
    saved = {
        name: callback_list.__dict__.get(name) for name in _CALLBACK_LIST_HOOKS
    }
    for name in _CALLBACK_LIST_HOOKS:
        after = {
            "on_train_end": on_train_end,
            "on_epoch_begin": after_epoch_begin,
            "on_train_batch_begin": after_batch_begin,
        }.get(name)
        callback_list.__dict__[name] = _guarded(
            getattr(callback_list, name), on_error, after
        )

    # The guard is made during `on_train_begin`: the callbacks whose
    # `on_train_begin` has not run yet are guarded one by one (the list's
    # own call is already on the stack).
    begun = []
    for callback in getattr(callback_list, "callbacks", None) or []:
        if "on_train_begin" not in callback.__dict__:
            callback.__dict__["on_train_begin"] = _guarded(
                callback.on_train_begin, on_error
            )
            begun.append(callback)

    def unhook():
        for name, previous in saved.items():
            if previous is None:
                callback_list.__dict__.pop(name, None)
            else:
                callback_list.__dict__[name] = previous
        for callback in begun:
            callback.__dict__.pop("on_train_begin", None)

    return unhook


class _GuardedContext:
    """A context manager that reports exceptions before `inner` sees them."""

    def __init__(self, inner, on_error):
        self.inner, self.on_error = inner, on_error

    def __enter__(self):
        return self.inner.__enter__()

    def __exit__(self, kind, error, traceback):
        if error is not None and not _is_control_flow(error):
            self.on_error()
        return self.inner.__exit__(kind, error, traceback)


_MODEL_METHODS = ("evaluate", "reset_metrics", "_get_metrics_result_or_logs")


@hook("3.15")
def guard_model(model, on_error, epoch_iterator=None):
    """Wraps ``model.train_function``, the model methods `fit` calls between
    callback hooks (``evaluate`` for validation, ``reset_metrics``, the
    epoch's metric results) and the data fetching of `fit`'s epoch
    iterator (`catch_stop_iteration`, entered around every fetch; on torch
    the data is fetched outside the train function) on the instances, so
    that `on_error()` runs when an exception passes them.

    A few statements of `fit` run outside all of these (e.g. building the
    validation iterator). If one raises, the next `fit` (or
    `train_on_batch`) of the model calls ``make_train_function()`` without
    `force`, which only a new call does: `on_error()` runs then, before it
    builds anything.

    Returns ``(refresh, unhook)``: `refresh()` wraps a train function built
    since (callbacks rebuild it), `unhook()` removes the wrappers."""
    saved = {
        name: model.__dict__.get(name)
        for name in _MODEL_METHODS + ("make_train_function",)
    }
    make_train_function = model.make_train_function

    def make_train_function_once_stale(force=False):
        if not force:
            on_error()  # a new `fit`: the one that installed is gone
        return make_train_function(force=force)

    if epoch_iterator is not None:
        catch = epoch_iterator.catch_stop_iteration
        epoch_iterator.__dict__["catch_stop_iteration"] = lambda: (
            _GuardedContext(catch(), on_error)
        )

    def refresh():
        fn = getattr(model, "train_function", None)
        if fn is not None and _GUARDED not in getattr(fn, "__dict__", {}):
            model.train_function = _guarded(fn, on_error)

    for name in _MODEL_METHODS:
        model.__dict__[name] = _guarded(getattr(model, name), on_error)
    model.__dict__["make_train_function"] = make_train_function_once_stale
    refresh()

    def unhook():
        for name, previous in saved.items():
            if previous is None:
                model.__dict__.pop(name, None)
            else:
                model.__dict__[name] = previous
        if epoch_iterator is not None:
            epoch_iterator.__dict__.pop("catch_stop_iteration", None)
        unguard_train_function(model)

    return refresh, unhook


@hook("3.15")
def unguard_train_function(model):
    fn = getattr(model, "train_function", None)
    inner = getattr(fn, "__dict__", {}).get(_GUARDED)
    if inner is not None:
        model.train_function = inner


_GUARD_KEY = "_keras_trainplus_fit_guard"


@hook("3.15")
def guard_of(callback_list):
    """The fit guard attached to a running `fit`'s `CallbackList`."""
    return callback_list.__dict__.get(_GUARD_KEY)


@hook("3.15")
def set_guard_of(callback_list, guard):
    """Attaches (None: detaches) a fit guard to the `CallbackList`."""
    if guard is None:
        callback_list.__dict__.pop(_GUARD_KEY, None)
    else:
        callback_list.__dict__[_GUARD_KEY] = guard


@hook("3.15")
def training_batches(epoch_iterator):
    """``(batches, steps)``: a fresh pass over the running `fit`'s training
    data as NumPy batches, and the steps of one epoch (`steps_per_epoch`,
    else the data's number of batches, None if unknown)."""
    require(epoch_iterator, "data_adapter", "read the training data")
    adapter = epoch_iterator.data_adapter
    steps = epoch_iterator.steps_per_epoch or adapter.num_batches
    return adapter.get_numpy_iterator(), steps


@hook("3.15")
def unguarded(fn):
    """The function a guard wrapper (`guard_model`) wraps, or `fn`."""
    return getattr(fn, "__dict__", {}).get(_GUARDED, fn)


@hook("3.15")
def epoch_sources(epoch_iterator, max_datasets=64):
    """What the running `fit` iterates: ``[py_dataset]`` for a `PyDataset`;
    for a `tf.data` dataset, it and the datasets it was built from (`map`,
    `prefetch`, ... keep their input: TensorFlow's `_inputs()`); else []."""
    require(epoch_iterator, "data_adapter", "read the training data")
    adapter = epoch_iterator.data_adapter
    if getattr(adapter, "py_dataset", None) is not None:
        return [adapter.py_dataset]
    found, stack = [], [getattr(adapter, "_dataset", None)]
    while stack and len(found) < max_datasets:
        dataset = stack.pop()
        if dataset is None or any(dataset is d for d in found):
            continue
        found.append(dataset)
        inputs = getattr(dataset, "_inputs", None)
        if callable(inputs):
            try:
                stack.extend(inputs())
            except (TypeError, ValueError, NotImplementedError):
                pass
    return found


@hook("3.15")
def shuffles_batches(epoch_iterator):
    """Whether `fit(shuffle=True)` permutes the batches of a `PyDataset`."""
    adapter = epoch_iterator.data_adapter
    return bool(getattr(adapter, "shuffle", False)) and hasattr(
        adapter, "py_dataset"
    )


@hook("3.15")
def set_epoch_batches(callback_list, epoch_iterator, num_batches):
    """Makes the coming epoch of a running `fit` `num_batches` long.

    Keras reads the number of batches of its data once, when `fit` starts,
    and then ends every epoch after that many (or warns that the data ran
    out). Called from a callback's `on_epoch_begin`, before the epoch's
    data is read, this sets the count of the epoch iterator and the
    progress bar's target. `steps_per_epoch` given to `fit` wins."""
    require(epoch_iterator, "_num_batches", "change the length of an epoch")
    if epoch_iterator.steps_per_epoch:
        return
    epoch_iterator._num_batches = int(num_batches)
    for callback in getattr(callback_list, "callbacks", []):
        if isinstance(callback, keras.callbacks.ProgbarLogger):
            params = dict(callback.params or {})
            params["steps"] = int(num_batches)
            callback.set_params(params)


@hook("3.15")
def sampling_tensor_spec(dataset, max_depth=8):
    """Whether Keras is reading batches of the `PyDataset` `dataset` to
    infer its `tf.data` signature (TensorFlow backend): it reads the first
    two and fixes every dimension on which they agree, so a later batch of
    another padded length would fail."""
    frame = sys._getframe(1)
    for _ in range(max_depth):
        if frame is None:
            return False
        if frame.f_code.co_name == "get_tf_dataset":
            owner = frame.f_locals.get("self")
            return getattr(owner, "py_dataset", None) is dataset
        frame = frame.f_back
    return False
