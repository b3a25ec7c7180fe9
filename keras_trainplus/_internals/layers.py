"""Layer internals: hidden layer state, the layer tree, `call` on the
instance, dropout's noise shape.

* **Hidden layer state**: a variable that is part of a layer's `variables`
  (hence of the JAX train state, updated in the forward pass like a
  `SeedGenerator` state) but not of its `weights` or checkpoints. It rides
  in the layer's `_seed_generators` list, which Keras only reads for
  `.state`.
* **Patching a layer's `call`** on the instance (stock dropout layers read
  their rate as a Python float at trace time).
* **Substituted variable values** for one call (weight noise): a nested
  `keras.StatelessScope` that sees the enclosing one's values (the JAX
  train state) and hands on what the call assigns and the losses it adds.
"""

import contextlib

from keras_trainplus._internals.version import hook
from keras_trainplus._internals.version import require


class HiddenState:
    """Holds a variable in a layer's seed-generator list (see module doc)."""

    def __init__(self, variable):
        self.state = variable


@hook("3.15")
def attach_hidden_state(layer, variable):
    """Makes `variable` part of ``layer.variables`` (the JAX train state) but
    not of ``layer.weights`` or of saved files."""
    require(layer, "_seed_generators", "attach a knob to a layer")
    for holder in layer._seed_generators:
        if getattr(holder, "state", None) is variable:
            return
    layer._seed_generators.append(HiddenState(variable))


@hook("3.15")
def detach_hidden_state(layer, variable):
    layer._seed_generators[:] = [
        h
        for h in layer._seed_generators
        if not (isinstance(h, HiddenState) and h.state is variable)
    ]


@hook("3.15")
def iter_layers(model):
    """All layers below `model`, recursively, each once."""
    if hasattr(model, "_flatten_layers"):
        return list(model._flatten_layers(include_self=False, recursive=True))
    out, stack, seen = [], list(getattr(model, "layers", [])), set()
    while stack:
        layer = stack.pop(0)
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        out.append(layer)
        stack.extend(getattr(layer, "layers", []))
    return out


@hook("3.15")
def layer_paths(model):
    """``{id(layer): path}`` for every layer below `model`: the names of
    the nested models above it and its own, joined by ``/``
    (``"tower/fc"``), whatever name scopes the layers were created in."""
    paths = {}

    def visit(layer, prefix):
        for inner in getattr(layer, "layers", []) or []:
            if id(inner) in paths:
                continue
            paths[id(inner)] = prefix + inner.name
            visit(inner, prefix + inner.name + "/")

    visit(model, "")
    return paths


@hook("3.15")
def set_layer_call(layer, call):
    """Replaces ``layer.call`` on this instance (None restores the class's).

    Keras analysed the signature of `call` when the layer was created; the
    replacement keeps the same `(inputs, training=False)` signature.
    """
    if call is None:
        layer.__dict__.pop("call", None)
    else:
        layer.__dict__["call"] = call


@hook("3.15")
def instance_call(layer):
    """The ``call`` set on this instance (`set_layer_call`), or None."""
    return layer.__dict__.get("call")


@hook("3.15")
def spatial_noise_shape(layer, inputs):
    """The noise shape of a `SpatialDropout*` layer for `inputs`."""
    require(layer, "_get_noise_shape", "schedule spatial dropout")
    return layer._get_noise_shape(inputs)


@hook("3.15")
def set_untracked_attribute(layer, name, value):
    """Sets ``layer.<name>`` without Keras's state tracking (a built layer
    cannot track new state)."""
    layer.__dict__[name] = value


@hook("3.15")
def output_units(layer):
    """The size of the last axis of `layer`'s (first) output, 1 for an
    output of rank <= 1, or None if unknown: from the functional graph, or
    from the input shape the layer was built on."""
    shape = None
    try:
        shape = layer.output.shape
    except (AttributeError, ValueError):
        shapes = getattr(layer, "_build_shapes_dict", None) or {}
        if len(shapes) == 1:
            import keras

            (input_shape,) = shapes.values()
            try:
                spec = layer.compute_output_spec(
                    keras.KerasTensor(tuple(input_shape))
                )
            except Exception:  # any layer's own shape inference
                return None
            while isinstance(spec, (list, tuple)):
                spec = spec[0] if spec else None
            shape = getattr(spec, "shape", None)
    while isinstance(shape, list) and shape and not isinstance(shape[0], int):
        shape = shape[0]
    if shape is None:
        return None
    if len(shape) <= 1:
        return 1
    return shape[-1]


@hook("3.15")
def call_training():
    """The `training` flag of the running layer call as Keras resolved it
    (the call's argument, an outer call's, or the signature's default): a
    bool, or None when nothing set it (e.g. under a subclassed model's
    `call` that JAX's `stateless_call` runs without a layer call)."""
    from keras.src.backend.common import global_state

    context = global_state.get_global_attribute("current_call_ctx")
    value = None if context is None else context.get_value("training")
    return None if value is None else bool(value)


@hook("3.15")
@contextlib.contextmanager
def substituted_values(values, variables):
    """Within the block, reading a variable of `values` (``[(variable,
    tensor)]``) gives its tensor. Assignments inside to `variables` (which
    must include those of `values`) reach the enclosing stateless scope
    (JAX's train step) or the variables themselves; losses added inside
    reach the enclosing scope when it collects them."""
    import keras
    from keras.src.backend.common import stateless_scope

    outer = stateless_scope.get_stateless_scope()
    collect = bool(outer is not None and outer.collect_losses)
    scope = keras.StatelessScope(
        values, collect_losses=collect, initialize_variables=False
    )
    if outer is not None:
        scope.state_mapping = {**outer.state_mapping, **scope.state_mapping}
    before = dict(scope.state_mapping)
    with scope:
        yield
    for variable in variables:
        key = id(variable)
        value = scope.state_mapping.get(key)
        if value is None or value is before.get(key):
            continue
        if outer is not None:
            outer.add_update((variable, value))
        else:
            variable.assign(value)
    if collect:
        for loss in scope.losses:
            outer.add_loss(loss)
