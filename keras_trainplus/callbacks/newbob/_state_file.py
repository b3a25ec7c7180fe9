"""Newbob state files: strict JSON, written atomically, never evaluated.

Format (`keras_trainplus.newbob`, version 1)::

    {"format": "keras_trainplus.newbob", "version": 1,
     "epochs": [{"epoch": 0, "learning_rate": 0.001, "predefined": false,
                 "scores": {"val_loss": 2.0, "loss": 2.5}}, ...]}

``epoch`` is Keras's 0-based epoch index. Non-finite floats are stored as
the strings "NaN", "Infinity" and "-Infinity", so the file is standard JSON
and loses nothing. RETURNN's own `learning_rate_file` (a Python literal) is
imported with a restricted `ast` walker that accepts only the literal forms
RETURNN writes; anything else is rejected without being executed.
"""

import ast
import json
import math
import os
import shutil
import tempfile

FORMAT = "keras_trainplus.newbob"
VERSION = 1

_SPECIAL = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


class StateFileError(ValueError):
    """A state file that cannot be read safely."""


def encode_float(x):
    if x is None:
        return None
    x = float(x)
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    return x


def decode_float(x, where):
    if isinstance(x, bool) or not isinstance(x, (int, float, str)):
        raise StateFileError(f"{where}: expected a number, got {x!r}")
    if isinstance(x, str):
        if x not in _SPECIAL:
            raise StateFileError(f"{where}: expected a number, got {x!r}")
        return _SPECIAL[x]
    return float(x)


def dumps(records):
    """Serializes {n (1-based): record} to the JSON text of the file."""
    epochs = []
    for n in sorted(records):
        rec = records[n]
        epochs.append(
            {
                "epoch": n - 1,
                "learning_rate": encode_float(rec.get("lr")),
                "predefined": bool(rec.get("predefined")),
                "scores": {
                    k: encode_float(v)
                    for k, v in sorted(rec.get("scores", {}).items())
                },
            }
        )
    return (
        json.dumps(
            {"format": FORMAT, "version": VERSION, "epochs": epochs},
            indent=1,
            allow_nan=False,
        )
        + "\n"
    )


def loads(text, path="<state>"):
    """Parses and validates a state file; returns {n (1-based): record}."""
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as error:
        raise StateFileError(
            f"{path} is not a valid keras_trainplus newbob state file "
            f"(corrupt or truncated JSON: {error})."
        ) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise StateFileError(
            f"{path} is not a keras_trainplus newbob state file (missing "
            f'"format": "{FORMAT}").'
        )
    version = data.get("version")
    if (
        not isinstance(version, int)
        or isinstance(version, bool)
        or not 1 <= version <= VERSION
    ):
        raise StateFileError(
            f"{path}: unsupported state file version {version!r} (this "
            f"keras_trainplus reads version {VERSION})."
        )
    epochs = data.get("epochs")
    if not isinstance(epochs, list):
        raise StateFileError(f'{path}: "epochs" must be a list.')
    records = {}
    for i, entry in enumerate(epochs):
        where = f"{path}: epochs[{i}]"
        if not isinstance(entry, dict):
            raise StateFileError(f"{where} must be an object.")
        epoch = entry.get("epoch")
        if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0:
            raise StateFileError(f"{where}: bad epoch {epoch!r}.")
        lr = entry.get("learning_rate")
        lr = None if lr is None else decode_float(lr, where + ".learning_rate")
        scores = entry.get("scores", {})
        if not isinstance(scores, dict) or not all(
            isinstance(k, str) for k in scores
        ):
            raise StateFileError(
                f'{where}: "scores" must map names to numbers.'
            )
        predefined = entry.get("predefined", False)
        if not isinstance(predefined, bool):
            raise StateFileError(f'{where}: "predefined" must be a bool.')
        if epoch + 1 in records:
            raise StateFileError(f"{where}: epoch {epoch} appears twice.")
        records[epoch + 1] = {
            "lr": lr,
            "predefined": predefined,
            "scores": {
                k: decode_float(v, f"{where}.scores[{k!r}]")
                for k, v in scores.items()
            },
        }
    return records


def _reject_constant(name):
    raise ValueError(f"non-standard JSON constant {name}")


def write_atomic(path, text):
    """Writes `text` to `path` so that readers see the old or the new file,
    never a partial one: a temporary file in the same directory, flushed and
    fsynced, then renamed over the target."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        dir=directory, prefix="." + os.path.basename(path) + ".", suffix=".tmp"
    )
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


# -- RETURNN `learning_rate_file` import ------------------------------------


def is_returnn_format(text):
    stripped = text.lstrip()
    return (
        stripped.startswith("{")
        and "EpochData" in text
        and not stripped.startswith('{"')
    )


def loads_returnn(text, path="<learning_rate_file>"):
    """Reads RETURNN's `learning_rate_file` without evaluating it.

    Accepts exactly the forms RETURNN writes: a dict literal of
    ``epoch: EpochData(learningRate=<number>, error=<dict or number>)`` with
    numbers written as literals, ``float('nan'|'inf'|'-inf')``,
    ``np.float64(<number>)``, ``nan`` or ``inf``. `:meta:` entries are
    dropped; nested score dicts are flattened as RETURNN does.

    Returns:
        {n (1-based): record}, with RETURNN's score names.
    """
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as error:
        raise StateFileError(
            f"{path} is not a readable RETURNN learning_rate_file "
            f"({type(error).__name__}: {error})."
        ) from None
    body = tree.body
    if not isinstance(body, ast.Dict):
        raise StateFileError(f"{path}: expected a dict literal of epochs.")
    records = {}
    for key, value in zip(body.keys, body.values):
        if not (isinstance(key, ast.Constant) and type(key.value) is int):
            raise StateFileError(f"{path}: epoch keys must be integers.")
        n = key.value
        lr, error = _epoch_data(value, f"{path}: epoch {n}")
        records[n] = {"lr": lr, "predefined": False, "scores": error}
    return records


def _epoch_data(node, where):
    if not (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "EpochData"
    ):
        raise StateFileError(
            f"{where}: expected EpochData(...), got {ast.dump(node)[:80]}."
        )
    kwargs = {k.arg: k.value for k in node.keywords}
    if None in kwargs:
        raise StateFileError(f"{where}: unsupported **kwargs.")
    args = list(node.args)
    names = ["learningRate", "error"]
    for name, arg in zip(names, args):
        kwargs.setdefault(name, arg)
    if len(args) > 2 or set(kwargs) - set(names):
        raise StateFileError(f"{where}: unexpected EpochData arguments.")
    lr_node = kwargs.get("learningRate")
    lr = None
    if lr_node is not None and not (
        isinstance(lr_node, ast.Constant) and lr_node.value is None
    ):
        lr = _number(lr_node, where + " learningRate")
    error_node = kwargs.get("error")
    scores = {}
    if isinstance(error_node, ast.Dict):
        for k, v in zip(error_node.keys, error_node.values):
            if not (isinstance(k, ast.Constant) and isinstance(k.value, str)):
                raise StateFileError(f"{where}: score names must be strings.")
            name = k.value
            if name.startswith(":meta:"):
                continue
            if isinstance(v, ast.Dict):
                scores.update(_flatten(name, v, where))
            else:
                scores[name] = _number(v, f"{where} {name}")
    elif error_node is not None and not (
        isinstance(error_node, ast.Constant) and error_node.value is None
    ):
        scores["old_format_score"] = _number(error_node, where + " error")
    return lr, scores


def _flatten(name, node, where):
    items = []
    for k, v in zip(node.keys, node.values):
        if not (isinstance(k, ast.Constant) and isinstance(k.value, str)):
            raise StateFileError(f"{where}: score names must be strings.")
        items.append((k.value, _number(v, f"{where} {name}")))
    if len(items) == 1:
        return {name: items[0][1]}
    return {f"{name}_{k.split(':')[-1]}": v for k, v in items}


def _number(node, where):
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return float(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(
        node.op, (ast.USub, ast.UAdd)
    ):
        value = _number(node.operand, where)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.Name) and node.id in ("nan", "inf"):
        return math.nan if node.id == "nan" else math.inf
    if isinstance(node, ast.Call) and len(node.args) == 1 and not node.keywords:
        func = node.func
        if isinstance(func, ast.Name) and func.id == "float":
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                text = arg.value.strip().lower()
                if text in (
                    "nan",
                    "inf",
                    "+inf",
                    "-inf",
                    "infinity",
                    "-infinity",
                    "+infinity",
                ):
                    return float(text)
            return _number(arg, where)
        if (
            isinstance(func, ast.Attribute)
            and isinstance(func.value, ast.Name)
            and func.value.id in ("np", "numpy")
            and func.attr in ("float64", "float32", "float16", "int64", "int32")
        ):
            return _number(node.args[0], where)
    raise StateFileError(
        f"{where}: expected a number literal, got `{ast.unparse(node)[:80]}`"
        " (nothing was executed)."
    )


def load(path, rename=None):
    """``(records, is_returnn)`` of the state file at `path` (ours, or a
    RETURNN `learning_rate_file`, whose score keys `rename` maps); no file
    (or no path) is no records."""
    if path is None or not os.path.exists(path):
        return {}, False
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if not is_returnn_format(text):
        return loads(text, path), False
    records = loads_returnn(text, path)
    for rec in records.values() if rename else ():
        rec["scores"] = {rename.get(k, k): s for k, s in rec["scores"].items()}
    return records, True


def save(path, records, backup=False):
    """Writes `records` atomically; with `backup`, an imported RETURNN file
    is first kept as ``<path>.returnn-backup`` (once)."""
    if backup and not os.path.exists(path + ".returnn-backup"):
        shutil.copy2(path, path + ".returnn-backup")
    write_atomic(path, dumps(records))


def by_keras_epoch(records):
    """``{keras_epoch: {"learning_rate", "scores", "predefined"}}``."""
    return {
        n - 1: {
            "learning_rate": r["lr"],
            "scores": r["scores"],
            "predefined": r["predefined"],
        }
        for n, r in sorted(records.items())
    }
