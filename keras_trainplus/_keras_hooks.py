"""Every use of private Keras internals lives in this module.

keras_trainplus needs three things public Keras 3 does not offer:

1. **An in-graph learning-rate program on an optimizer that keeps its own
   learning-rate variable.** Assigning a `LearningRateSchedule` through the
   public setter *untracks* the optimizer's learning-rate variable, which
   changes the optimizer's variable count (checkpoints then silently skip all
   optimizer state on reload) and its config. Instead we shadow the
   optimizer's ``_get_current_learning_rate`` on the instance; the variable
   stays tracked (so it is part of the JAX train state and can be a knob),
   the config keeps a float learning rate, and everything that reads the
   learning rate (update step, decoupled weight decay, the
   ``learning_rate`` property) sees the program.
2. **In-graph optimizer hyperparameters** (``momentum``, ``beta_1``):
   Keras reads them as Python floats at trace time. We substitute per-step
   tensors while the update step runs. SGD's update step branches on
   ``momentum != 0`` in Python, so for SGD we run the documented SGD
   momentum update ourselves.
3. **Tracking an extra variable as an optimizer variable** (so a knob read by
   the optimizer is part of the JAX train state).
4. **Hidden layer state**: a variable that is part of a layer's `variables`
   (hence of the JAX train state, updated in the forward pass like a
   `SeedGenerator` state) but not of its `weights` or checkpoints. It rides in
   the layer's `_seed_generators` list, which Keras only reads for `.state`.
5. **Patching a layer's `call`** on the instance (stock dropout layers read
   their rate as a Python float at trace time).
6. **Gradient clipping after the cross-replica sum** on TF (Keras clips each
   replica's gradient before the all-reduce): we wrap
   `_all_reduce_sum_gradients` and clip its result, so every replica clips
   the same aggregated gradient, with no extra communication.
7. **For the LR finder**: random-generator states (to restore them exactly),
   a metric attached to a built model (its variables are carried through
   the JAX step), and `compute_loss` wrapped on the instance (to record
   every update's own loss in-graph).

8. **Target mixing** (`mix_targets`): ``train_step`` and ``compute_loss``
   wrapped on the instance (nesting, so the LR finder stacks on top).
9. **MultiWorkerMirroredStrategy `fit` on Keras 3.15 / TF 2.21**
   (`patch_multi_worker_fit`): two module-level fixes, see there.
10. **Undoing on every way out of `fit`** (`_fit_guard`): the running
   `fit`'s `CallbackList` and epoch iterator found on the call stack, and
   instance wrappers of their hooks, ``model.train_function`` and
   ``model.evaluate``; the optimizer's `apply` marked per thread (so Python
   reads of a base-reading learning rate see the base); gradient
   accumulation's micro-batch counter.

Each hook checks that the attributes it relies on exist and fails with a
clear message otherwise. Tested on Keras 3.15; `check_keras_version` warns
outside the tested major version.
"""

import contextlib
import threading
import warnings
import weakref

import keras
from keras import ops

TESTED_KERAS_MAJOR = 3

_LR_HOOK = "_get_current_learning_rate"
_STATE = "_keras_trainplus_programs"


def keras_version():
    parts = keras.__version__.split(".")
    return tuple(int("".join(c for c in p if c.isdigit()) or 0)
                 for p in parts[:2])


def check_keras_version():
    major = keras_version()[0]
    if major != TESTED_KERAS_MAJOR:
        warnings.warn(
            f"keras_trainplus is tested with Keras {TESTED_KERAS_MAJOR}.x; "
            f"found Keras {keras.__version__}. In-graph schedules rely on "
            "optimizer internals that may have changed.",
            stacklevel=3,
        )


def _require(obj, attr, purpose):
    if not hasattr(obj, attr):
        raise RuntimeError(
            f"keras_trainplus cannot {purpose}: `{type(obj).__name__}` has "
            f"no attribute `{attr}` in Keras {keras.__version__}. Please "
            "report this with your Keras version."
        )


def optimizers_of(optimizer):
    """The optimizers that apply updates (unwraps LossScaleOptimizer)."""
    if optimizer is None:
        raise ValueError(
            "The model has no optimizer. Call `model.compile(optimizer=...)` "
            "before `fit`."
        )
    if hasattr(optimizer, "inner_optimizer"):
        return optimizers_of(optimizer.inner_optimizer)
    if hasattr(optimizer, "optimizers"):
        out = []
        for opt in optimizer.optimizers:
            out.extend(optimizers_of(opt))
        return out
    return [optimizer]


def learning_rate_variable(optimizer):
    """The optimizer's learning-rate variable, or None if it has a schedule."""
    _require(optimizer, "_learning_rate", "read the learning-rate variable")
    lr = optimizer._learning_rate
    return lr if isinstance(lr, keras.Variable) else None


def learning_rate_variable_or_schedule(optimizer):
    """What the optimizer holds as its learning rate (variable or
    schedule), for messages."""
    _require(optimizer, "_learning_rate", "read the learning rate")
    return optimizer._learning_rate


class _PerGraphCache:
    """Caches program values for the duration of one TF trace.

    Inside a traced TF train step the optimizer evaluates the learning rate
    and `update_step` once per variable; each evaluation would re-read
    `iterations` and recompute the program (graph optimizers do not merge
    variable reads). Values are cached per graph (each `tf.function`, loop
    body and cond branch has its own graph, so a tensor is only reused where
    it is valid). Eager execution, JAX (XLA deduplicates pure computations)
    and torch are not cached.
    """

    def __init__(self):
        self._store = weakref.WeakKeyDictionary()

    def get(self, key, compute):
        graph = _current_tf_graph()
        if graph is None:
            return compute()
        entries = self._store.setdefault(graph, {})
        if key not in entries:
            entries[key] = compute()
        return entries[key]


def _current_tf_graph():
    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf

    if tf.executing_eagerly():
        return None
    return tf.compat.v1.get_default_graph()


def _caches(optimizer):
    """One per-graph cache per optimizer, shared by all its programs."""
    cache = optimizer.__dict__.get("_keras_trainplus_cache")
    if cache is None:
        cache = _PerGraphCache()
        optimizer.__dict__["_keras_trainplus_cache"] = cache
    return cache


def _step(optimizer):
    """`optimizer.iterations`, read once per traced graph and shared by the
    learning-rate and hyperparameter programs (so graph optimizers can merge
    the parts of their computations that are identical)."""
    return _caches(optimizer).get(
        "step", lambda: ops.convert_to_tensor(optimizer.iterations))


def _state(optimizer):
    state = optimizer.__dict__.get(_STATE)
    if state is None:
        state = {"lr": None, "hyper": {}}
        optimizer.__dict__[_STATE] = state
    return state


_APPLYING = threading.local()


def _in_apply():
    return getattr(_APPLYING, "depth", 0) > 0


def _guard_apply(optimizer):
    """Marks (per thread: MirroredStrategy runs replicas in threads) that the
    optimizer's `apply` is running, i.e. the update step reads the LR."""
    if "apply" in optimizer.__dict__:
        return
    _require(optimizer, "apply", "install an in-graph learning rate")
    original = type(optimizer).apply

    def apply(*args, **kwargs):
        _APPLYING.depth = getattr(_APPLYING, "depth", 0) + 1
        try:
            return original(optimizer, *args, **kwargs)
        finally:
            _APPLYING.depth -= 1

    optimizer.__dict__["apply"] = apply


def set_learning_rate_program(optimizer, program, needs_variable=True,
                              python_reads_base=False):
    """Makes the learning rate of every update ``program(step, lr_variable)``.

    `step` is ``optimizer.iterations`` (updates already applied). Pass
    ``program=None`` to restore the optimizer's own behaviour. A program
    that does not read the variable (`needs_variable=False`, e.g. the LR
    finder's range) also works on an optimizer created with a schedule.

    With `python_reads_base`, `optimizer.learning_rate` read from Python
    (outside the update step) is the variable, i.e. the base value that the
    program reads and that Python writes (`ReduceLROnPlateau` reads, scales
    and writes it back); the update step still uses the program.
    """
    _require(optimizer, _LR_HOOK, "install an in-graph learning rate")
    state = _state(optimizer)
    if program is None:
        optimizer.__dict__.pop(_LR_HOOK, None)
        optimizer.__dict__.pop("apply", None)
        state["lr"] = None
        return
    if needs_variable and learning_rate_variable(optimizer) is None:
        raise ValueError(
            f"The optimizer `{optimizer.name}` was created with a "
            f"learning-rate schedule ({optimizer._learning_rate!r}). A "
            "keras_trainplus learning-rate callback would fight with it: "
            "create the optimizer with a float `learning_rate`, or pass the "
            "keras_trainplus schedule to the optimizer directly and drop the "
            "callback."
        )

    cache = _caches(optimizer)

    def current_learning_rate():
        if python_reads_base and not _in_apply():
            return optimizer._learning_rate
        return cache.get("lr", lambda: program(_step(optimizer),
                                               optimizer._learning_rate))

    if python_reads_base:
        _guard_apply(optimizer)
    optimizer.__dict__[_LR_HOOK] = current_learning_rate
    state["lr"] = program


def accumulation_steps(optimizer):
    """Micro-batches per update (`gradient_accumulation_steps`, else 1)."""
    return int(getattr(optimizer, "gradient_accumulation_steps", None) or 1)


def micro_iterations(optimizer):
    """Micro-batches the optimizer has seen (``optimizer.iterations`` counts
    real updates: this count divided by `accumulation_steps`)."""
    _require(optimizer, "_iterations", "count micro-batches")
    return int(ops.convert_to_numpy(optimizer._iterations))


def has_momentum_slots(optimizer):
    if isinstance(optimizer, keras.optimizers.SGD):
        return bool(optimizer.momentum)
    return True


_SUBSTITUTION_LOCK = threading.Lock()


@contextlib.contextmanager
def _substituted(optimizer, values):
    """Temporarily replaces optimizer attributes by per-step tensors.

    Under MirroredStrategy replica threads can be inside at the same time:
    the originals are saved by the first to enter and restored by the last
    to leave (the values are equal: all come from the same step).
    """
    state = _state(optimizer)
    with _SUBSTITUTION_LOCK:
        if state.setdefault("depth", 0) == 0:
            state["saved"] = {n: optimizer.__dict__[n] for n in values}
        state["depth"] += 1
        optimizer.__dict__.update(values)
    try:
        yield
    finally:
        with _SUBSTITUTION_LOCK:
            state["depth"] -= 1
            if state["depth"] == 0:
                optimizer.__dict__.update(state.pop("saved"))


def _sgd_momentum_update(optimizer, gradient, variable, learning_rate,
                         momentum):
    """SGD with momentum as documented for `keras.optimizers.SGD`.

    velocity = momentum * velocity - learning_rate * g
    w = w + velocity                                  (plain)
    w = w + momentum * velocity - learning_rate * g   (nesterov)
    """
    lr = ops.cast(learning_rate, variable.dtype)
    gradient = ops.cast(gradient, variable.dtype)
    momentum = ops.cast(momentum, variable.dtype)
    m = optimizer.momentums[optimizer._get_variable_index(variable)]
    optimizer.assign(
        m, ops.subtract(ops.multiply(m, momentum),
                        ops.multiply(gradient, lr))
    )
    if optimizer.nesterov:
        optimizer.assign_add(
            variable,
            ops.subtract(ops.multiply(m, momentum),
                         ops.multiply(gradient, lr)),
        )
    else:
        optimizer.assign_add(variable, m)


def set_hyperparameter_programs(optimizer, programs):
    """Makes optimizer attributes per-step tensors ``program(step)``.

    `programs` maps attribute names (``"momentum"``, ``"beta_1"``) to
    callables of ``optimizer.iterations``. Pass ``{}`` to remove.
    """
    state = _state(optimizer)
    for hook in ("update_step", "_backend_update_step",
                 "_apply_weight_decay"):
        optimizer.__dict__.pop(hook, None)
    state["hyper"] = dict(programs)
    if not programs:
        return
    for name in programs:
        _require(optimizer, name, f"schedule `{name}`")
    cls = type(optimizer)
    is_sgd = isinstance(optimizer, keras.optimizers.SGD)

    cache = _caches(optimizer)
    all_programs = dict(programs)

    def values():
        def compute():
            step = _step(optimizer)
            return {name: fn(step) for name, fn in all_programs.items()}

        return cache.get("hyper", compute)

    if "weight_decay" in programs:
        original_weight_decay = cls._apply_weight_decay

        def apply_weight_decay(variables):
            with _substituted(optimizer, {"weight_decay":
                                          values()["weight_decay"]}):
                return original_weight_decay(optimizer, variables)

        optimizer.__dict__["_apply_weight_decay"] = apply_weight_decay
        programs = {k: f for k, f in programs.items() if k != "weight_decay"}
        if not programs:
            return

    if keras.backend.backend() == "torch":
        # Eager: compute once per step, then run the per-variable update
        # (the fused torch path needs Python numbers for some arguments).
        import torch

        _require(optimizer, "_backend_update_step", "schedule momentum")

        def backend_update_step(grads, trainable_variables, learning_rate):
            vals = {k: v for k, v in values().items() if k in programs}
            with torch.no_grad(), _substituted(optimizer, vals):
                for grad, var in zip(grads, trainable_variables):
                    cls.update_step(optimizer, grad, var, learning_rate)

        optimizer.__dict__["_backend_update_step"] = backend_update_step
        return

    original_backend_update_step = cls._backend_update_step

    def backend_update_step(grads, trainable_variables, learning_rate):
        # Build the values here, outside the per-variable colocation scopes
        # of `update_step`, next to the learning-rate program: the graph
        # optimizer can then merge their common work. `update_step` reads
        # them from the per-graph cache.
        values()
        return original_backend_update_step(
            optimizer, grads, trainable_variables, learning_rate)

    optimizer.__dict__["_backend_update_step"] = backend_update_step

    def update_step(gradient, variable, learning_rate):
        vals = {k: v for k, v in values().items() if k in programs}
        with _substituted(optimizer, vals):
            if is_sgd and "momentum" in vals:
                return _sgd_momentum_update(
                    optimizer, gradient, variable, learning_rate,
                    vals["momentum"],
                )
            return cls.update_step(optimizer, gradient, variable,
                                   learning_rate)

    optimizer.__dict__["update_step"] = update_step


def update_hyperparameter_programs(optimizer, changes):
    """Adds (callable) or removes (None) per-attribute programs."""
    programs = dict(_state(optimizer)["hyper"])
    for name, fn in changes.items():
        if fn is None:
            programs.pop(name, None)
        else:
            programs[name] = fn
    set_hyperparameter_programs(optimizer, programs)


def clear_programs(optimizer):
    set_learning_rate_program(optimizer, None)
    set_hyperparameter_programs(optimizer, {})
    set_gradient_clip_program(optimizer, None)


def set_gradient_clip_program(optimizer, clip):
    """Replaces the optimizer's gradient clipping by ``clip(grads, step)``.

    On TF the clip runs on the all-reduced gradients (inside
    `_backend_update_step`, after `_all_reduce_sum_gradients`), so under
    `tf.distribute` it acts on the aggregated gradient exactly as on one
    device. Elsewhere (single process JAX/torch) it replaces
    `_clip_gradients`. The optimizer's own `clipnorm`/`global_clipnorm`/
    `clipvalue` are bypassed while installed. Pass None to remove.
    """
    for hook in ("_clip_gradients", "_all_reduce_sum_gradients"):
        optimizer.__dict__.pop(hook, None)
    if clip is None:
        return
    _require(optimizer, "_clip_gradients", "schedule gradient clipping")

    def no_clip(grads):
        return grads

    if keras.backend.backend() == "tensorflow":
        _require(optimizer, "_all_reduce_sum_gradients",
                 "clip the aggregated gradient")
        original = type(optimizer)._all_reduce_sum_gradients

        def all_reduce_then_clip(grads_and_vars):
            reduced = list(original(optimizer, grads_and_vars))
            grads = clip([g for g, _ in reduced], _step(optimizer))
            return [(g, v) for g, (_, v) in zip(grads, reduced)]

        optimizer.__dict__["_clip_gradients"] = no_clip
        optimizer.__dict__["_all_reduce_sum_gradients"] = all_reduce_then_clip
        return

    def clip_gradients(grads):
        return clip(list(grads), _step(optimizer))

    optimizer.__dict__["_clip_gradients"] = clip_gradients


class HiddenState:
    """Holds a variable in a layer's seed-generator list (see module doc)."""

    def __init__(self, variable):
        self.state = variable


def attach_hidden_state(layer, variable):
    """Makes `variable` part of ``layer.variables`` (the JAX train state) but
    not of ``layer.weights`` or of saved files."""
    _require(layer, "_seed_generators", "attach a knob to a layer")
    for holder in layer._seed_generators:
        if getattr(holder, "state", None) is variable:
            return
    layer._seed_generators.append(HiddenState(variable))


def detach_hidden_state(layer, variable):
    layer._seed_generators[:] = [
        h for h in layer._seed_generators
        if not (isinstance(h, HiddenState) and h.state is variable)
    ]


def iter_layers(model):
    """All layers below `model`, recursively, each once."""
    if hasattr(model, "_flatten_layers"):
        return list(model._flatten_layers(include_self=False,
                                          recursive=True))
    out, stack, seen = [], list(getattr(model, "layers", [])), set()
    while stack:
        layer = stack.pop(0)
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        out.append(layer)
        stack.extend(getattr(layer, "layers", []))
    return out


def set_layer_call(layer, call):
    """Replaces ``layer.call`` on this instance (None restores the class's).

    Keras analysed the signature of `call` when the layer was created; the
    replacement keeps the same `(inputs, training=False)` signature.
    """
    if call is None:
        layer.__dict__.pop("call", None)
    else:
        layer.__dict__["call"] = call


def track_optimizer_variable(optimizer, variable):
    """Adds `variable` to ``optimizer.variables`` (part of the JAX state).

    Note: this changes the optimizer's variable count, hence its checkpoint
    layout.
    """
    _require(optimizer, "_track_variable", "track a knob variable")
    if any(v is variable for v in optimizer.variables):
        return
    optimizer._track_variable(variable)


_HIDDEN = "_keras_trainplus_hidden"


def attach_hidden_optimizer_state(optimizer, variable):
    """Tracks `variable` as an optimizer variable (so the JAX trainer carries
    it in the train state) without changing what the optimizer saves and
    loads: its `save_own_variables`/`load_own_variables` skip it, so
    checkpoints keep the stock layout."""
    track_optimizer_variable(optimizer, variable)
    hidden = optimizer.__dict__.setdefault(_HIDDEN, [])
    if not any(h is variable for h in hidden):
        hidden.append(variable)
    if "save_own_variables" in optimizer.__dict__:
        return

    def visible():
        return [v for v in optimizer.variables
                if not any(v is h for h in optimizer.__dict__[_HIDDEN])]

    def save_own_variables(store):
        for i, variable in enumerate(visible()):
            store[str(i)] = variable.numpy()

    def load_own_variables(store):
        variables = visible()
        if len(store.keys()) != len(variables):
            warnings.warn(
                f"Skipping variable loading for optimizer '{optimizer.name}',"
                f" because it has {len(variables)} variables whereas the "
                f"saved optimizer has {len(store.keys())} variables.",
                stacklevel=2,
            )
            return
        for i, variable in enumerate(variables):
            variable.assign(store[str(i)])

    optimizer.__dict__["save_own_variables"] = save_own_variables
    optimizer.__dict__["load_own_variables"] = load_own_variables


def detach_hidden_optimizer_state(optimizer, variable):
    hidden = optimizer.__dict__.get(_HIDDEN, [])
    if not any(h is variable for h in hidden):
        return
    hidden[:] = [h for h in hidden if h is not variable]
    _require(optimizer, "_untrack_variable", "untrack a knob variable")
    optimizer._untrack_variable(variable)
    if not hidden:
        for name in ("save_own_variables", "load_own_variables", _HIDDEN):
            optimizer.__dict__.pop(name, None)


def snapshot_rng():
    """The states of every random generator training can consume: Python's
    `random`, NumPy's global generator (Keras shuffles arrays with it on JAX
    and torch), torch's, Keras's global seed generator (unseeded random
    ops), and TensorFlow's per-op seed counter (new tf.data shuffles draw
    their seeds from it)."""
    import random

    import numpy as np

    state = {"python": random.getstate(), "numpy": np.random.get_state()}
    backend = keras.backend.backend()
    if backend == "torch":
        import torch

        state["torch"] = torch.random.get_rng_state()
    if backend == "tensorflow":
        from tensorflow.python.eager import context

        rng = getattr(context.context(), "_rng", None)
        state["tf_op_seeds"] = None if rng is None else rng.getstate()
    generator = _keras_global_seed_generator()
    if generator is not None:
        state["keras_global"] = np.array(
            keras.ops.convert_to_numpy(generator.state))
    return state


def restore_rng(state):
    import random

    import numpy as np

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    if "torch" in state:
        import torch

        torch.random.set_rng_state(state["torch"])
    if state.get("tf_op_seeds") is not None:
        from tensorflow.python.eager import context

        rng = getattr(context.context(), "_rng", None)
        if rng is not None:
            rng.setstate(state["tf_op_seeds"])
    generator = _keras_global_seed_generator()
    if generator is not None and "keras_global" in state:
        generator.state.assign(state["keras_global"])


def _keras_global_seed_generator():
    try:
        from keras.src.backend.common import global_state
    except ImportError:  # pragma: no cover - layout changed
        return None
    return global_state.get_global_attribute("global_seed_generator")


def attach_metric(model, metric):
    """Adds `metric` to ``model.metrics`` (hence to the state the JAX trainer
    carries through the compiled step) after the model was built."""
    _require(model, "_metrics", "attach a metric")
    if not any(m is metric for m in model._metrics):
        model._metrics.append(metric)


def detach_metric(model, metric):
    model._metrics[:] = [m for m in model._metrics if m is not metric]


def wrap_compute_loss(model, make):
    """Wraps ``model.compute_loss`` on the instance.

    `make(previous)` gets the current bound `compute_loss` (the class's, or
    an earlier wrapper) and returns the replacement, which must keep the
    signature ``(x, y, y_pred, sample_weight, training)``; Keras calls it
    from every backend's train step. Returns a token for
    `unwrap_compute_loss`, so wrappers nest and unwind in order.
    """
    _require(model, "compute_loss", "wrap the loss computation")
    token = model.__dict__.get("compute_loss")
    model.__dict__["compute_loss"] = make(model.compute_loss)
    return token


def unwrap_compute_loss(model, token):
    if token is None:
        model.__dict__.pop("compute_loss", None)
    else:
        model.__dict__["compute_loss"] = token


def set_train_step(model, train_step):
    """Replaces ``model.train_step`` on the instance (every backend's train
    function calls ``self.train_step``)."""
    _require(model, "train_step", "wrap the train step")
    model.__dict__["train_step"] = train_step


def rebuild_train_function(model):
    """Drops the traced train function so the next step retraces.

    `fit` creates the train function before `on_train_begin` and reads
    ``model.train_function`` at every step, so calling this from a callback
    makes the programs installed there take effect (and removing them at
    `on_train_end` keeps later `fit` calls from running stale programs).
    """
    model.make_train_function(force=True)


def sync_jax_state(model):
    """On JAX, writes the in-flight train state back into the variables.

    After this, variable assignments made by a callback are picked up by the
    next train step instead of being overwritten at the end of the epoch.
    """
    sync = getattr(model, "jax_state_sync", None)
    if sync is not None:
        sync()


# -- 9. MultiWorkerMirroredStrategy fit --------------------------------------

_MWMS_PATCHED = {}


def patch_multi_worker_fit():
    """Fixes stock `fit()` under `MultiWorkerMirroredStrategy` (TF backend).

    Measured on Keras 3.15.1 / TF 2.21 (`../shared/specs/keras_internals.md`,
    tensorflow/tensorflow#72388):

    1. `_maybe_symbolic_build` averages the first distributed batch with
       ``strategy.reduce("MEAN", batch, axis=None)``, which fails for
       multi-worker `PerReplica` values. Building only needs shapes and
       dtypes: we build from the first local replica's batch instead.
    2. `reduce_per_replica` reduces every log with ``axis=0``, which fails
       for scalar logs under multi-worker collectives. We reduce scalars
       with ``axis=None`` (their mean over replicas).

    Both are no-ops for other strategies. Idempotent; returns True when
    the patches are active.
    """
    if keras.backend.backend() != "tensorflow":
        return False
    if _MWMS_PATCHED:
        return True
    import tensorflow as tf
    from keras.src.backend.tensorflow import trainer as tf_trainer

    _require(tf_trainer, "reduce_per_replica", "fix multi-worker fit")
    _require(tf_trainer, "_collective_all_reduce_multi_worker",
             "fix multi-worker fit")
    trainer_cls = tf_trainer.TensorFlowTrainer
    _require(trainer_cls, "_maybe_symbolic_build", "fix multi-worker fit")
    original_build = trainer_cls._maybe_symbolic_build
    original_reduce = tf_trainer.reduce_per_replica

    def _multi_worker(strategy):
        return strategy is not None and \
            tf_trainer._collective_all_reduce_multi_worker(strategy)

    def maybe_symbolic_build(self, iterator=None, data_batch=None):
        strategy = self._distribute_strategy
        if iterator is None or not _multi_worker(strategy):
            return original_build(self, iterator=iterator,
                                  data_batch=data_batch)
        for _, _, it in iterator:
            batch = next(it)
            data_batch = keras.tree.map_structure(
                lambda t: strategy.experimental_local_results(t)[0]
                if isinstance(t, tf.distribute.DistributedValues) else t,
                batch)
            break
        with strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and _multi_worker(strategy):
            def reduce(v):
                local = strategy.experimental_local_results(v)[0] \
                    if isinstance(v, tf.distribute.DistributedValues) else v
                rank = getattr(getattr(local, "shape", None), "rank", None)
                return strategy.reduce("MEAN", v,
                                       axis=None if rank == 0 else 0)

            return keras.tree.map_structure(reduce, values)
        return original_reduce(values, strategy, reduction)

    trainer_cls._maybe_symbolic_build = maybe_symbolic_build
    tf_trainer.reduce_per_replica = reduce_per_replica
    _MWMS_PATCHED.update(build=original_build, reduce=original_reduce)
    return True



# -- 10. Undoing on every way out of fit -------------------------------------
#
# Keras 3.15 calls `on_train_end` only when `fit` ends normally. To undo what
# callbacks installed when an exception (KeyboardInterrupt included) leaves
# `fit`, `_fit_guard` needs a frame on the exception's way out. Everything
# `fit` calls goes through one of: the `CallbackList` it created (every
# callback hook, validation's test hooks too), ``model.train_function``,
# ``model.evaluate`` (validation) and the epoch iterator's
# `catch_stop_iteration` (entered around every data fetch). Each is wrapped
# on the instance for the duration of one `fit`; nothing in Keras is
# patched globally.

_CALLBACK_LIST_HOOKS = (
    "on_epoch_begin", "on_epoch_end", "on_train_batch_begin",
    "on_train_batch_end", "on_test_begin", "on_test_end",
    "on_test_batch_begin", "on_test_batch_end", "on_train_end",
)
# Exceptions that `fit` uses for control flow (end of an epoch's data).
_CONTROL_FLOW = ("StopIteration", "OutOfRangeError")
_GUARDED = "_keras_trainplus_guarded"


def calling_fit(model, max_depth=50):
    """``(callback_list, epoch_iterator)`` of the `fit` call running
    callbacks of `model`, or ``(None, None)`` when a callback is driven by
    hand (no `fit` on the stack). `epoch_iterator` is None if not found."""
    import sys

    frame = sys._getframe(1)
    for _ in range(max_depth):
        if frame is None:
            break
        if "self" in frame.f_code.co_varnames:
            owner = frame.f_locals.get("self")
            if isinstance(owner, keras.callbacks.CallbackList) and \
                    getattr(owner, "_model", None) is model:
                caller = frame.f_back
                it = caller.f_locals.get("epoch_iterator") if caller else None
                if not hasattr(type(it), "catch_stop_iteration"):
                    it = None
                return owner, it
        frame = frame.f_back
    return None, None


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


def guard_callback_list(callback_list, on_error, on_train_end,
                        after_epoch_begin, after_batch_begin):
    """Wraps the hooks of the `CallbackList` of a running `fit` (which lives
    as long as that call): `on_error()` runs when an exception passes one,
    and the other functions after the callbacks' `on_train_end`,
    `on_epoch_begin` and `on_train_batch_begin` returned. Returns the
    function that removes the wrappers."""
    saved = {name: callback_list.__dict__.get(name)
             for name in _CALLBACK_LIST_HOOKS}
    for name in _CALLBACK_LIST_HOOKS:
        after = {"on_train_end": on_train_end,
                 "on_epoch_begin": after_epoch_begin,
                 "on_train_batch_begin": after_batch_begin}.get(name)
        callback_list.__dict__[name] = _guarded(
            getattr(callback_list, name), on_error, after)

    def unhook():
        for name, previous in saved.items():
            if previous is None:
                callback_list.__dict__.pop(name, None)
            else:
                callback_list.__dict__[name] = previous

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


# Model methods `fit` calls through `self.` between the callback hooks.
_MODEL_METHODS = ("evaluate", "reset_metrics", "_get_metrics_result_or_logs")


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
    saved = {name: model.__dict__.get(name)
             for name in _MODEL_METHODS + ("make_train_function",)}
    make_train_function = model.make_train_function

    def make_train_function_once_stale(force=False):
        if not force:
            on_error()  # a new `fit`: the one that installed is gone
        return make_train_function(force=force)
    if epoch_iterator is not None:
        catch = epoch_iterator.catch_stop_iteration
        epoch_iterator.__dict__["catch_stop_iteration"] = \
            lambda: _GuardedContext(catch(), on_error)

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


def unguard_train_function(model):
    fn = getattr(model, "train_function", None)
    inner = getattr(fn, "__dict__", {}).get(_GUARDED)
    if inner is not None:
        model.train_function = inner


def end_jax_fit_state(model):
    """On JAX, after the variables were synced and then changed by an abort:
    keeps `fit`'s `finally` from writing its in-flight state back."""
    if keras.backend.backend() == "jax" and hasattr(model, "_jax_state"):
        model._jax_state = None


def skip_next_finalize(optimizer):
    """Makes the optimizer's next `finalize_variable_values` (which `fit`'s
    `finally` calls on JAX after an abort; it copies the EMA into the
    weights when `use_ema=True`) a no-op, once."""
    if not getattr(optimizer, "use_ema", False):
        return

    def finalize_variable_values(var_list):
        optimizer.__dict__.pop("finalize_variable_values", None)

    optimizer.__dict__["finalize_variable_values"] = finalize_variable_values
