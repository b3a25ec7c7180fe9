"""One `fit` call's guard: undo on every way out, and one writer per value.

Keras calls `on_train_end` only when `fit` ends normally; an exception
(`KeyboardInterrupt` included) leaves whatever callbacks installed in place.
Every keras_trainplus callback that installs something into a model
registers an ``abort`` function with the guard of the running `fit`:

* normal end (also early stopping and ``model.stop_training``): the
  callback undoes its changes in `on_train_end` and calls `done`;
* an exception in any callback hook, the train step, or validation: the
  guard runs every pending ``abort`` (last registered first) before the
  exception propagates out of `fit`, then re-raises it.

The guard also holds the *claims* of the fit: which callback writes which
value (an optimizer's learning rate, a layer's dropout rate, ...). Two
writers of one value are an error at `on_train_begin`, naming both, except
the documented composition: one writer of the base value (a `PerEpoch`
leaf, `NewbobLRControl`, a stock Keras callback) and one in-graph program
that reads it (`BaseValue() * shape`).

The guard belongs to the `CallbackList` of the running `fit` (so nested and
repeated `fit` calls each have their own). A callback driven by hand
(`on_train_begin` ... `on_train_end` called directly, no `fit` running) gets
a guard of its own, without exception hooks or shared claims.
"""

import warnings

from keras_trainplus import _internals as internals


def guard_for(callback):
    """The guard of the `fit` call that is running `callback`."""
    model = callback.model
    callback_list, epoch_iterator = internals.fit_loop.calling_fit(model)
    if callback_list is None:
        return FitGuard(model)
    guard = internals.fit_loop.guard_of(callback_list)
    if guard is None or guard.closed:
        guard = FitGuard(model, callback_list, epoch_iterator)
        internals.fit_loop.set_guard_of(callback_list, guard)
    return guard


def describe(owner):
    """How a writer is named in messages."""
    return getattr(owner, "_trainplus_name", None) or type(owner).__name__


class FitGuard:
    """Aborts and claims of one `fit` call (see module doc)."""

    def __init__(self, model, callback_list=None, epoch_iterator=None):
        self.model = model
        self._epoch_iterator = epoch_iterator
        self.closed = False
        self._holder = callback_list
        self._aborts = []  # [(owner, fn)], run last first
        self._claims = {}  # value key -> [(owner, target, role)]
        self._unhooks = []
        self._refresh = None
        self._epoch_started = []  # fns run after every `on_epoch_begin`
        if callback_list is not None:
            self._unhooks.append(
                internals.fit_loop.guard_callback_list(
                    callback_list,
                    self.abort,
                    self.finish,
                    self._after_epoch_begin,
                    self._after_batch_begin,
                )
            )

    @property
    def epoch_iterator(self):
        """The running `fit`'s epoch iterator (None if not found)."""
        return self._epoch_iterator

    def _after_epoch_begin(self):
        self._after_batch_begin()
        for fn in self._epoch_started:
            fn()

    def _after_batch_begin(self):
        if self._refresh is not None:
            self._refresh()

    def rebuild_train_function(self):
        """Rebuilds the model's train function (installed programs take
        effect) and guards the new one at once, so callbacks after the
        caller see the function the epoch will run."""
        internals.trainer.rebuild_train_function(self.model)
        self._after_batch_begin()

    def after_epoch_begin(self, fn):
        """Runs `fn()` once every callback's `on_epoch_begin` has run (what
        the epoch's updates will use is then known). Returns False when no
        `fit` is running (the caller must do without)."""
        if self._holder is None:
            return False
        self._epoch_started.append(fn)
        return True

    # -- undo ---------------------------------------------------------------

    def add(self, owner, abort):
        """Registers `abort()`, run if `fit` ends by an exception before
        `owner` calls `done`. The model's train step and validation are
        guarded from the first registration on."""
        self._aborts.append((owner, abort))
        if self._unhooks and self._refresh is None:
            self._refresh, unhook = internals.fit_loop.guard_model(
                self.model, self.abort, self._epoch_iterator
            )
            self._unhooks.append(unhook)

    def done(self, owner):
        """`owner` ended normally: forget its aborts and claims."""
        self._aborts = [(o, f) for o, f in self._aborts if o is not owner]
        for key in list(self._claims):
            self._claims[key] = [
                c for c in self._claims[key] if c[0] is not owner
            ]
            if not self._claims[key]:
                del self._claims[key]
        if self._holder is None and not self._aborts:
            self._close()

    def abort(self):
        """Runs every pending abort (last first). Idempotent."""
        if self.closed:
            return
        pending, self._aborts = self._aborts, []
        if pending:
            internals.trainer.sync_jax_state(self.model)
        for owner, fn in reversed(pending):
            try:
                fn()
            except Exception as error:  # keep undoing the others
                warnings.warn(
                    f"keras_trainplus: undoing {describe(owner)} after an "
                    f"exception in `fit` failed: {error!r}",
                    stacklevel=2,
                )
        if pending:
            internals.trainer.end_jax_fit_state(self.model)
        self._close()

    def finish(self):
        """After the callbacks' `on_train_end`: undo what is still pending
        (an owner whose `on_train_end` was not reached), then unhook."""
        self.abort()

    def _close(self):
        self.closed = True
        self._claims = {}
        self._epoch_started = []
        for unhook in reversed(self._unhooks):
            unhook()
        self._unhooks = []
        self._refresh = None
        if (
            self._holder is not None
            and internals.fit_loop.guard_of(self._holder) is self
        ):
            internals.fit_loop.set_guard_of(self._holder, None)

    def accumulation_factors(self):
        """epoch -> factor of the callback of this `fit` that schedules the
        gradient accumulation, or None (asked for the fit's lengths, in any
        callback order)."""
        callbacks = getattr(self._holder, "callbacks", None) or []
        for callback in callbacks:
            find = getattr(callback, "_accumulation_factors", None)
            factors = find() if find is not None else None
            if factors is not None:
                return factors
        return None

    # -- one writer per value -------------------------------------------------

    def claim(self, key, owner, target, role, what):
        """Declares that `owner` (its `target`) writes the value `key`.

        `role` is ``"owns"`` (sets it outright, e.g. a per-step schedule),
        ``"base"`` (writes the base value once per epoch), ``"program"`` (an
        in-graph program that reads the base) or ``"base+program"``. `what`
        names the value in the error message.
        """
        claims = self._claims.setdefault(key, [])
        for other, other_target, other_role in claims:
            if other is owner and other_target == target:
                return
            if _compatible(role, other_role):
                continue
            self.abort()
            raise ValueError(
                f"Two writers of one value: {_writer(owner, target)} and "
                f"{_writer(other, other_target)} both set {what}. Keep one "
                "of them. To combine a per-epoch value with a per-step "
                "shape, let one callback write the base and schedule "
                "`schedules.BaseValue() * shape` (or pass `step_shape=`)."
            )
        claims.append((owner, target, role))


def _writer(owner, target):
    name = describe(owner)
    return f"{name} (target {target!r})" if target else name


def _compatible(a, b):
    """One base writer plus one program that reads the base may share."""
    return {a, b} == {"base", "program"}
