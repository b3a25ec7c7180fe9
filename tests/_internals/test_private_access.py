"""Private Keras access lives in `keras_trainplus/_internals` only.

Scans the package's source (outside `_internals`) for: imports of
``keras.src`` or ``tensorflow.python``, ``__dict__`` access on objects
other than the instance itself, frame inspection, and any use of an
attribute that Keras itself defines with a leading underscore (on Keras
classes or on the instances a compiled model creates), as ``obj._name``
or as a ``getattr``/``hasattr``/``setattr`` string.
"""

import ast
import pathlib

import keras
import numpy as np

PACKAGE = pathlib.Path(__file__).resolve().parents[2] / "keras_trainplus"
FORBIDDEN_MODULES = ("keras.src", "tensorflow.python")


def _private(names):
    return {n for n in names if n.startswith("_") and not n.startswith("__")}


def keras_private_names():
    """Underscore attributes of the Keras objects the package deals with."""
    inputs = keras.Input((4,))
    hidden = keras.layers.Dropout(0.5)(keras.layers.Dense(4)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(1)(hidden))
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9), loss="mse")
    x = np.zeros((8, 4), "float32")
    model.fit(x, x[:, :1], epochs=1, verbose=0)
    objects = [
        model,
        model.optimizer,
        model.layers[1],
        model.layers[2],
        keras.optimizers.Adam(),
        keras.callbacks.Callback(),
        keras.callbacks.CallbackList([], model=model),
        keras.metrics.Mean(),
        keras.Variable(1.0),
        keras.random.SeedGenerator(0),
        keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD()),
    ]
    names = set()
    for obj in objects:
        names |= _private(dir(obj)) | _private(vars(obj))
    return names


def package_files():
    return [p for p in PACKAGE.rglob("*.py") if "_internals" not in p.parts]


def own_names():
    """Underscore names the package defines itself (methods, attributes,
    module functions): using those is not Keras access."""
    names = set()
    for path in package_files():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(
                node.ctx, ast.Store
            ):
                names.add(node.attr)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
    return _private(names)


def violations(source, keras_private, own):
    found = []
    for node in ast.walk(ast.parse(source)):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module.startswith(FORBIDDEN_MODULES):
                found.append((line, f"imports {node.module}"))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith(FORBIDDEN_MODULES):
                    found.append((line, f"imports {alias.name}"))
        elif isinstance(node, ast.Attribute):
            owner = node.value
            if node.attr == "__dict__" and not (
                isinstance(owner, ast.Name) and owner.id in ("self", "new")
            ):
                found.append((line, "__dict__ of a foreign object"))
            elif node.attr == "_getframe":
                found.append((line, "frame inspection"))
            elif node.attr in keras_private and node.attr not in own:
                found.append((line, f"Keras-private attribute {node.attr}"))
            elif (
                node.attr in keras_private
                and node.attr in own
                and not (isinstance(owner, ast.Name) and owner.id == "self")
                and node.attr in KERAS_ONLY
            ):
                found.append((line, f"Keras-private attribute {node.attr}"))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "hasattr", "setattr", "delattr")
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and node.args[1].value in keras_private
        ):
            found.append((line, f"{node.func.id}(..., {node.args[1].value!r})"))
    return found


# Keras-private names that the package also happens to define for its own
# objects: using them on anything but `self` is still Keras access.
KERAS_ONLY = {"_learning_rate", "_iterations", "_seed_generators", "_model"}


def test_no_private_keras_access_outside_internals():
    keras_private = keras_private_names()
    own = own_names()
    report = []
    for path in package_files():
        for line, what in violations(path.read_text(), keras_private, own):
            report.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {what}")
    assert not report, "\n".join(report)


def test_the_scan_finds_private_access():
    """The scanner itself: each kind of access is reported."""
    keras_private = keras_private_names()
    source = (
        "from keras.src.backend import common\n"
        "import tensorflow.python.eager\n"
        "lr = optimizer._learning_rate\n"
        "layer.__dict__['call'] = f\n"
        "frame = sys._getframe(1)\n"
        "gens = getattr(layer, '_seed_generators')\n"
    )
    kinds = [what for _, what in violations(source, keras_private, set())]
    assert len(kinds) == 6, kinds
    assert (
        violations(
            "self.__dict__['x'] = 1\nx = self.value\n", keras_private, set()
        )
        == []
    )
