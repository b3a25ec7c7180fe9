"""What `WeightEMA` and `StochasticWeightAveraging` share: their state
saved with Keras's `BackupAndRestore` (a resumed run continues the average
exactly) and the claims on the model's weights.

State files live in the backup's `backup_dir` (deleted with it), one pair
per callback kind: ``keras_trainplus_<kind>.npz`` (the arrays, NumPy's
format, loaded without pickle) and ``keras_trainplus_<kind>.json`` (what
was saved, at which update), each written to a temporary file and renamed
(atomic); the JSON is written last, so it only names complete arrays.
"""

import contextlib
import json
import os
import warnings

import keras
import numpy as np

from keras_trainplus import _internals as internals
from keras_trainplus.knobs import bound_knob


def iterations(model):
    opt = internals.optimizer.optimizers_of(model.optimizer)[0]
    return bound_knob.host_iterations(opt)


class BackupLink:
    """Saves ``state(backup)`` (a dict of arrays) whenever a `BackupAndRestore`
    of the fit saves, and loads it with ``load(arrays)`` when that backup
    is restored.

    Args:
        kind: the file name's part (``"weight_ema"``).
        state: ``(backup) -> {name: array}`` (`backup` is the saving
            `BackupAndRestore`).
        load: ``({name: array}) -> None``.
    """

    def __init__(self, kind, state, load):
        self.kind = kind
        self._state = state
        self._load = load
        self._backups = []
        self.saved_at = None  # iterations of the state loaded, if any

    def attach(self, callback):
        """Hooks the backups of the fit running `callback`; loads the state
        if one of them restores. Returns True if a state was loaded."""
        callback_list, _ = internals.fit_loop.calling_fit(callback.model)
        self._backups = internals.backup.backups_of(callback_list)
        loaded = False
        for backup in self._backups:
            internals.backup.set_on_save(
                backup, self.kind, lambda b=backup: self._save(b)
            )
            if not loaded and internals.backup.has_backup(backup):
                loaded = self._restore(backup)
        return loaded

    def detach(self):
        for backup in self._backups:
            internals.backup.set_on_save(backup, self.kind, None)
        self._backups = []

    def check_resumed(self, model, owner):
        """After the backup restored the model: the state must be from the
        same update, else (Keras fell back to an older backup) it is
        dropped with a warning. Returns whether it was kept."""
        if self.saved_at is None:
            return False
        now = iterations(model)
        saved, self.saved_at = self.saved_at, None
        if saved == now:
            return True
        warnings.warn(
            f"{owner}: the saved average is from update {saved}, but the "
            f"restored model is at update {now}; the average starts over.",
            stacklevel=2,
        )
        return False

    def _paths(self, backup):
        base = os.path.join(backup.backup_dir, f"keras_trainplus_{self.kind}")
        return base + ".json", base + ".npz"

    def _save(self, backup):
        model = backup.model  # on JAX: syncs the train state
        meta_path, arrays_path = self._paths(backup)
        os.makedirs(backup.backup_dir, exist_ok=True)
        arrays = self._state(backup)
        with open(arrays_path + ".tmp", "wb") as f:
            np.savez(f, **arrays)
        os.replace(arrays_path + ".tmp", arrays_path)
        meta = {
            "format": 1,
            "kind": self.kind,
            "iterations": iterations(model),
            "arrays": os.path.basename(arrays_path),
        }
        with open(meta_path + ".tmp", "w") as f:
            json.dump(meta, f)
        os.replace(meta_path + ".tmp", meta_path)

    def _restore(self, backup):
        meta_path, arrays_path = self._paths(backup)
        if not os.path.exists(meta_path):
            return False
        with open(meta_path) as f:
            meta = json.load(f)
        with np.load(arrays_path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        self._load(arrays)
        self.saved_at = int(meta["iterations"])
        return True


@contextlib.contextmanager
def undo_on_error(guard):
    """What a callback installs in its own `on_train_begin` is undone if
    the rest of it raises (the guard catches later callbacks' errors)."""
    try:
        yield
    except BaseException:
        guard.abort()
        raise


def claim_weights(guard, owner, final, validation):
    """One writer of the weights `fit` leaves (`final`) and of those
    validation runs on (`validation`). Keras's `EarlyStopping` with
    `restore_best_weights` writes the final weights too."""
    model = guard.model
    callback_list, _ = internals.fit_loop.calling_fit(model)
    for callback in getattr(callback_list, "callbacks", None) or []:
        if (
            final
            and isinstance(callback, keras.callbacks.EarlyStopping)
            and callback.restore_best_weights
        ):
            guard.abort()
            raise ValueError(
                "Two writers of one value: `EarlyStopping(restore_best_"
                f"weights=True)` and {type(owner).__name__} both set the "
                f"weights model {model.name!r} holds after `fit`. Keep one: "
                "pass `restore_best_weights=False` (the averaged weights "
                "are kept)"
                + (
                    ", or `apply_at_end=False` (the best raw weights)."
                    if hasattr(owner, "apply_at_end")
                    else "."
                )
            )
    if final:
        guard.claim(
            ("final_weights", id(model)),
            owner,
            None,
            "owns",
            f"the weights model {model.name!r} holds after `fit`",
        )
    if validation:
        guard.claim(
            ("validation_weights", id(model)),
            owner,
            None,
            "owns",
            f"the weights model {model.name!r} is validated with",
        )
