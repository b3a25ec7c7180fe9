"""Keras's `BackupAndRestore`: whether it will restore a backup, and running
code whenever it saves one (so state it does not know of is saved with
it)."""

import os

import keras

from keras_trainplus._internals.version import hook
from keras_trainplus._internals.version import require

_FNS = "_keras_trainplus_backup_fns"


@hook("3.15")
def backups_of(callback_list):
    """The `BackupAndRestore` callbacks of a running `fit`."""
    return [
        c
        for c in getattr(callback_list, "callbacks", None) or []
        if isinstance(c, keras.callbacks.BackupAndRestore)
    ]


@hook("3.15")
def has_backup(callback):
    """Whether `callback` restores a backup at `on_train_begin`."""
    require(callback, "_weights_path", "find the backup")
    return os.path.exists(callback._weights_path)


@hook("3.15")
def set_on_save(callback, name, fn):
    """Runs ``fn()`` right after every save of `callback` (one named layer
    per owner); ``fn=None`` removes it, and with none left the callback is
    stock again."""
    require(callback, "_save_model", "save state with the backup")
    fns = callback.__dict__.get(_FNS)
    if fn is None:
        if fns is not None:
            fns.pop(name, None)
            if not fns:
                del callback.__dict__[_FNS]
                callback.__dict__.pop("_save_model", None)
        return
    if fns is None:
        fns = callback.__dict__[_FNS] = {}
        stock = callback._save_model

        def save_model(*args, **kwargs):
            out = stock(*args, **kwargs)
            for f in list(fns.values()):
                f()
            return out

        callback.__dict__["_save_model"] = save_model
    fns[name] = fn
