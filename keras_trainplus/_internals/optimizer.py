"""Optimizer internals: the learning rate, the update counters, extra
variables.

* **An in-graph learning-rate program on an optimizer that keeps its own
  learning-rate variable.** Assigning a `LearningRateSchedule` through the
  public setter *untracks* the optimizer's learning-rate variable, which
  changes the optimizer's variable count (checkpoints then silently skip all
  optimizer state on reload) and its config. Instead we shadow the
  optimizer's ``_get_current_learning_rate`` on the instance; the variable
  stays tracked (so it is part of the JAX train state and can be a knob),
  the config keeps a float learning rate, and everything that reads the
  learning rate (update step, decoupled weight decay, the
  ``learning_rate`` property) sees the program. The optimizer's `apply` is
  marked per thread, so Python reads of a base-reading learning rate see the
  base.
* **The update counters**: ``optimizer.iterations`` read once per traced
  graph, and gradient accumulation's micro-batch counter.
* **Extra optimizer variables** (so a knob read by the optimizer is part of
  the JAX train state), optionally hidden from saved files.
"""

import contextlib
import threading
import warnings
import weakref

import keras
from keras import ops

from keras_trainplus._internals.version import hook
from keras_trainplus._internals.version import require

_LR_HOOK = "_get_current_learning_rate"


_STATE = "_keras_trainplus_programs"

# inner optimizer -> the wrapper (LossScaleOptimizer) whose `variables`
# include its variables, so hidden state is hidden from both.
_WRAPPERS = weakref.WeakKeyDictionary()


def _with_wrappers(optimizer):
    out = [optimizer]
    while out[-1] in _WRAPPERS and _WRAPPERS[out[-1]]() is not None:
        out.append(_WRAPPERS[out[-1]]())
    return out


@hook("3.15")
def optimizers_of(optimizer):
    """The optimizers that apply updates (unwraps LossScaleOptimizer)."""
    if optimizer is None:
        raise ValueError(
            "The model has no optimizer. Call `model.compile(optimizer=...)` "
            "before `fit`."
        )
    if hasattr(optimizer, "inner_optimizer"):
        _WRAPPERS[optimizer.inner_optimizer] = weakref.ref(optimizer)
        return optimizers_of(optimizer.inner_optimizer)
    if hasattr(optimizer, "optimizers"):
        out = []
        for opt in optimizer.optimizers:
            out.extend(optimizers_of(opt))
        return out
    return [optimizer]


@hook("3.15")
def learning_rate_variable(optimizer):
    """The optimizer's learning-rate variable, or None if it has a schedule."""
    require(optimizer, "_learning_rate", "read the learning-rate variable")
    lr = optimizer._learning_rate
    return lr if isinstance(lr, keras.Variable) else None


@hook("3.15")
def learning_rate_variable_or_schedule(optimizer):
    """What the optimizer holds as its learning rate (variable or
    schedule), for messages."""
    require(optimizer, "_learning_rate", "read the learning rate")
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
        self._eager = None  # values of the one eager step in progress
        self._depth = 0

    @contextlib.contextmanager
    def eager_step(self):
        """Eagerly (torch), values computed inside are shared until the
        outermost scope exits: one update step."""
        if self._depth == 0:
            self._eager = {}
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
            if self._depth == 0:
                self._eager = None

    def get(self, key, compute):
        graph = _current_tf_graph()
        if graph is None:
            if self._eager is None or keras.backend.backend() != "torch":
                return compute()
            if key not in self._eager:
                self._eager[key] = compute()
            return self._eager[key]
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


def caches(optimizer):
    """One per-graph cache per optimizer, shared by all its programs."""
    cache = optimizer.__dict__.get("_keras_trainplus_cache")
    if cache is None:
        cache = _PerGraphCache()
        optimizer.__dict__["_keras_trainplus_cache"] = cache
    return cache


def step(optimizer):
    """`optimizer.iterations`, read once per traced graph and shared by the
    learning-rate and hyperparameter programs (so graph optimizers can merge
    the parts of their computations that are identical)."""
    return caches(optimizer).get(
        "step", lambda: ops.convert_to_tensor(optimizer.iterations)
    )


def state(optimizer):
    state = optimizer.__dict__.get(_STATE)
    if state is None:
        state = {"lr": None, "hyper": {}}
        optimizer.__dict__[_STATE] = state
    return state


@hook("3.15")
def forget_if_idle(optimizer):
    """Removes the per-optimizer state and cache once no program is
    installed, so the optimizer is stock again."""
    programs = optimizer.__dict__.get(_STATE)
    if programs is None:
        return
    if any(
        programs.get(k)
        for k in ("lr", "hyper", "gradient", "multipliers", "layers")
    ):
        return
    if programs.get("depth"):
        return
    optimizer.__dict__.pop(_STATE, None)
    optimizer.__dict__.pop("_keras_trainplus_cache", None)


_APPLYING = threading.local()


def _in_apply():
    return getattr(_APPLYING, "depth", 0) > 0


def _guard_apply(optimizer):
    """Marks (per thread: MirroredStrategy runs replicas in threads) that the
    optimizer's `apply` is running, i.e. the update step reads the LR."""
    if "apply" in optimizer.__dict__:
        return
    require(optimizer, "apply", "install an in-graph learning rate")
    original = type(optimizer).apply

    def apply(*args, **kwargs):
        _APPLYING.depth = getattr(_APPLYING, "depth", 0) + 1
        try:
            return original(optimizer, *args, **kwargs)
        finally:
            _APPLYING.depth -= 1

    optimizer.__dict__["apply"] = apply


@hook("3.15")
def set_learning_rate_program(
    optimizer, program, needs_variable=True, python_reads_base=False
):
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
    require(optimizer, _LR_HOOK, "install an in-graph learning rate")
    programs = state(optimizer)
    if program is None:
        optimizer.__dict__.pop(_LR_HOOK, None)
        optimizer.__dict__.pop("apply", None)
        programs["lr"] = None
        forget_if_idle(optimizer)
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

    cache = caches(optimizer)

    def current_learning_rate():
        if python_reads_base and not _in_apply():
            return optimizer._learning_rate
        return cache.get(
            "lr", lambda: program(step(optimizer), optimizer._learning_rate)
        )

    if python_reads_base:
        _guard_apply(optimizer)
    optimizer.__dict__[_LR_HOOK] = current_learning_rate
    programs["lr"] = program


@hook("3.15")
def accumulation_steps(optimizer):
    """Micro-batches per update (`gradient_accumulation_steps`, else 1)."""
    return int(getattr(optimizer, "gradient_accumulation_steps", None) or 1)


@hook("3.15")
def micro_iterations(optimizer):
    """Micro-batches the optimizer has seen (``optimizer.iterations`` counts
    real updates: this count divided by `accumulation_steps`)."""
    require(optimizer, "_iterations", "count micro-batches")
    return int(ops.convert_to_numpy(optimizer._iterations))


@hook("3.15")
def track_optimizer_variable(optimizer, variable):
    """Adds `variable` to ``optimizer.variables`` (part of the JAX state).

    Note: this changes the optimizer's variable count, hence its checkpoint
    layout.
    """
    require(optimizer, "_track_variable", "track a knob variable")
    if any(v is variable for v in optimizer.variables):
        return
    optimizer._track_variable(variable)


_HIDDEN = "_keras_trainplus_hidden"


@hook("3.15")
def attach_hidden_optimizer_state(optimizer, variable):
    """Tracks `variable` as an optimizer variable (so the JAX trainer carries
    it in the train state) without changing what the optimizer saves and
    loads: its `save_own_variables`/`load_own_variables` skip it, and so do
    those of a wrapper whose variables include it (`LossScaleOptimizer`),
    so checkpoints keep the stock layout."""
    track_optimizer_variable(optimizer, variable)
    for opt in _with_wrappers(optimizer):
        hidden = opt.__dict__.setdefault(_HIDDEN, [])
        if not any(h is variable for h in hidden):
            hidden.append(variable)
        if "save_own_variables" not in opt.__dict__:
            _hide_from_saving(opt)


def _hide_from_saving(optimizer):
    def visible():
        return [
            v
            for v in optimizer.variables
            if not any(v is h for h in optimizer.__dict__[_HIDDEN])
        ]

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


@hook("3.15")
def detach_hidden_optimizer_state(optimizer, variable):
    hidden = optimizer.__dict__.get(_HIDDEN, [])
    if not any(h is variable for h in hidden):
        return
    require(optimizer, "_untrack_variable", "untrack a knob variable")
    optimizer._untrack_variable(variable)
    for opt in _with_wrappers(optimizer):
        hidden = opt.__dict__.get(_HIDDEN, [])
        hidden[:] = [h for h in hidden if h is not variable]
        if not hidden:
            for name in ("save_own_variables", "load_own_variables", _HIDDEN):
                opt.__dict__.pop(name, None)


def hidden_optimizer_state(optimizer):
    """The variables attached with `attach_hidden_optimizer_state`."""
    return list(optimizer.__dict__.get(_HIDDEN, []))
