"""Trainer internals: metrics attached after build, `compute_loss` and
`train_step` wrapped on the instance, the traced train function, the JAX
train state.

The LR finder attaches a metric (its variables are carried through the JAX
step) and wraps `compute_loss` (to record every update's own loss
in-graph); target mixing (`mix_targets`) wraps ``train_step`` and
``compute_loss`` (nesting, so the LR finder stacks on top).
"""

import threading

import keras

from keras_trainplus._internals.version import hook
from keras_trainplus._internals.version import require


@hook("3.15")
def attach_metric(model, metric):
    """Adds `metric` to ``model.metrics`` (hence to the state the JAX trainer
    carries through the compiled step) after the model was built."""
    require(model, "_metrics", "attach a metric")
    if not any(m is metric for m in model._metrics):
        model._metrics.append(metric)


@hook("3.15")
def detach_metric(model, metric):
    model._metrics[:] = [m for m in model._metrics if m is not metric]


@hook("3.15")
def wrap_compute_loss(model, make):
    """Wraps ``model.compute_loss`` on the instance.

    `make(previous)` gets the current bound `compute_loss` (the class's, or
    an earlier wrapper) and returns the replacement, which must keep the
    signature ``(x, y, y_pred, sample_weight, training)``; Keras calls it
    from every backend's train step. Returns a token for
    `unwrap_compute_loss`, so wrappers nest and unwind in order.
    """
    require(model, "compute_loss", "wrap the loss computation")
    token = model.__dict__.get("compute_loss")
    model.__dict__["compute_loss"] = make(model.compute_loss)
    return token


@hook("3.15")
def unwrap_compute_loss(model, token):
    if token is None:
        model.__dict__.pop("compute_loss", None)
    else:
        model.__dict__["compute_loss"] = token


@hook("3.15")
def set_train_step(model, train_step):
    """Replaces ``model.train_step`` on the instance (every backend's train
    function calls ``self.train_step``); None restores the class's."""
    require(model, "train_step", "wrap the train step")
    if train_step is None:
        model.__dict__.pop("train_step", None)
    else:
        model.__dict__["train_step"] = train_step


@hook("3.15")
def build_for_fit(model, epoch_iterator):
    """Builds the variables of a model not built yet from the data of the
    running `fit` (TF builds a subclassed model at the first trace, after
    `on_train_begin`; JAX's `fit` does this before it). Like Keras's own
    symbolic build under a strategy, it takes one batch and resets the
    epoch iterator."""
    require(model, "_symbolic_build", "build the model before the fit")
    if epoch_iterator is None or all(
        layer.built for layer in _layers_and_self(model)
    ):
        return
    model._symbolic_build(iterator=epoch_iterator)
    epoch_iterator.reset()


def _layers_and_self(model):
    return [model, *model._flatten_layers(include_self=False)]


@hook("3.15")
def instance_train_step(model):
    """The ``train_step`` set on this instance (`set_train_step`), or
    None."""
    return model.__dict__.get("train_step")


@hook("3.15")
def rebuild_train_function(model):
    """Drops the traced train function so the next step retraces.

    `fit` creates the train function before `on_train_begin` and reads
    ``model.train_function`` at every step, so calling this from a callback
    makes the programs installed there take effect (and removing them at
    `on_train_end` keeps later `fit` calls from running stale programs).
    """
    model.make_train_function(force=True)


@hook("3.15")
def sync_jax_state(model):
    """On JAX, writes the in-flight train state back into the variables.

    After this, variable assignments made by a callback are picked up by the
    next train step instead of being overwritten at the end of the epoch.
    """
    sync = getattr(model, "jax_state_sync", None)
    if sync is not None:
        sync()


@hook("3.15")
def end_jax_fit_state(model):
    """On JAX, after the variables were synced and then changed by an abort:
    keeps `fit`'s `finally` from writing its in-flight state back."""
    if keras.backend.backend() == "jax" and hasattr(model, "_jax_state"):
        model._jax_state = None


_POST = "_keras_trainplus_post_updates"


@hook("3.15")
def set_post_update(model, name, fn):
    """Runs ``fn()`` inside the compiled train step, after each step's
    update (every step of a `steps_per_execution` block). `fn` reads model
    and optimizer variables and assigns optimizer variables (e.g. weight
    averages attached as hidden optimizer state) and non-trainable model
    variables (hidden layer state) through the Keras `Variable` API. On
    JAX the step is stateless: `fn` runs in a `StatelessScope` over the
    step's new state, what it assigns goes back into that state, and
    `pre_update_value` gives the weights the step started from. While the
    step runs, `in_train_step` is true.

    Functions are named layers: one wrapper of `train_step` runs them in
    the order they were set (other wrappers of `train_step` stay inside);
    ``fn=None`` removes the layer `name`, and with none left `train_step`
    is what it was before the first."""
    require(model, "train_step", "run a function after each update")
    layers = model.__dict__.get(_POST)
    if fn is None:
        if layers is None:
            return
        layers["fns"].pop(name, None)
        if not layers["fns"]:
            del model.__dict__[_POST]
            if layers["token"] is None:
                model.__dict__.pop("train_step", None)
            else:
                model.__dict__["train_step"] = layers["token"]
        return
    if layers is None:
        layers = {"token": model.__dict__.get("train_step"), "fns": {}}
        layers["step"] = _post_update_step(model, model.train_step, layers)
        model.__dict__[_POST] = layers
        model.__dict__["train_step"] = layers["step"]
    layers["fns"][name] = fn


_IN_STEP = threading.local()


@hook("3.15")
def in_train_step(model):
    """Whether `model`'s train step (with a post-update layer, see
    `set_post_update`) is running or being traced in this thread: a
    training forward pass, not `evaluate` or `predict`."""
    return id(model) in getattr(_IN_STEP, "models", ())


@hook("3.15")
def pre_update_value(variable):
    """Inside a post-update function on JAX: `variable`'s value when the
    step began (None elsewhere: TF and torch update in place)."""
    return getattr(_IN_STEP, "before", {}).get(id(variable))


class _Marked:
    """Marks the train step of `model` as running in this thread."""

    def __init__(self, model):
        self.key = id(model)

    def __enter__(self):
        models = getattr(_IN_STEP, "models", ())
        _IN_STEP.models = (*models, self.key)

    def __exit__(self, *exc):
        models = list(_IN_STEP.models)
        models.remove(self.key)
        _IN_STEP.models = tuple(models)


def _post_update_step(model, previous, layers):
    def run_all():
        for fn in list(layers["fns"].values()):
            fn()

    if keras.backend.backend() != "jax":

        def train_step(*args, **kwargs):
            with _Marked(model):
                logs = previous(*args, **kwargs)
                run_all()
            return logs

        return train_step

    def train_step(state, data):
        with _Marked(model):
            logs, new_state = previous(state, data)
        trainable, non_trainable, optimizer_values, metrics = new_state
        variables = model.optimizer.variables
        mapping = list(zip(model.trainable_variables, trainable))
        mapping += list(zip(model.non_trainable_variables, non_trainable))
        mapping += list(zip(variables, optimizer_values))
        _IN_STEP.before = {
            id(v): old for v, old in zip(model.trainable_variables, state[0])
        }
        try:
            with keras.StatelessScope(state_mapping=mapping) as scope:
                run_all()
        finally:
            _IN_STEP.before = {}
        optimizer_values = [
            _current(scope, v, old)
            for v, old in zip(variables, optimizer_values)
        ]
        non_trainable = [
            _current(scope, v, old)
            for v, old in zip(model.non_trainable_variables, non_trainable)
        ]
        return logs, (trainable, non_trainable, optimizer_values, metrics)

    return train_step


def _current(scope, variable, old):
    value = scope.get_current_value(variable)
    return old if value is None else value
