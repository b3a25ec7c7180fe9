"""Generates docs/api.md from the docstrings of every public symbol.

Run: python docs/generate_api.py   (tests check that docs/api.md is current)
"""

import inspect
import os
import pathlib
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras_trainplus as ktp  # noqa: E402

SECTIONS = [
    (
        "keras_trainplus",
        ktp,
        ["find_lr", "LRFinderResult", "Knob", "plot_schedule", "plot_history"],
    ),
    ("keras_trainplus.callbacks", ktp.callbacks, None),
    ("keras_trainplus.layers", ktp.layers, None),
    ("keras_trainplus.data", ktp.data, None),
    ("keras_trainplus.schedules", ktp.schedules, None),
    ("keras_trainplus.distribute", ktp.distribute, None),
    ("keras_trainplus.tuner", ktp.tuner, None),
]


def signature(obj):
    try:
        target = obj.__init__ if inspect.isclass(obj) else obj
        sig = inspect.signature(target)
        params = [p for p in sig.parameters.values() if p.name != "self"]
        return "(" + ", ".join(str(p) for p in params) + ")"
    except (TypeError, ValueError):
        return "(...)"


def render():
    lines = [
        "# API reference",
        "",
        "Generated from the docstrings by `python docs/generate_api.py`"
        " (keras_trainplus " + ktp.__version__ + "). Every public "
        "symbol, with its arguments, an example and the errors it "
        "raises.",
        "",
    ]
    lines.append("## Contents")
    lines.append("")
    for module_name, module, names in SECTIONS:
        names = names or list(module.__all__)
        for name in names:
            anchor = f"{module_name}.{name}".replace(".", "").lower()
            lines.append(f"- [`{module_name}.{name}`](#{anchor})")
    lines.append("")
    for module_name, module, names in SECTIONS:
        names = names or list(module.__all__)
        lines += [f"## `{module_name}`", ""]
        doc = inspect.getdoc(module) or ""
        if doc and module is not ktp:
            lines += [doc, ""]
        for name in names:
            obj = getattr(module, name)
            kind = "class" if inspect.isclass(obj) else "function"
            lines += [
                f"### `{module_name}.{name}`",
                "",
                f"```python\n{kind} {name}{signature(obj)}\n```",
                "",
                inspect.getdoc(obj) or "(no docstring)",
                "",
            ]
            if inspect.isclass(obj):
                for attr, member in sorted(vars(obj).items()):
                    if attr.startswith("_") or not (
                        inspect.isfunction(member)
                        or isinstance(member, (classmethod, staticmethod))
                    ):
                        continue
                    if attr in (
                        "call",
                        "get_config",
                        "from_config",
                        "build",
                        "compute_output_shape",
                        "compute_mask",
                        "on_train_begin",
                        "on_train_end",
                        "on_epoch_begin",
                        "on_epoch_end",
                        "on_train_batch_end",
                        "on_train_batch_begin",
                        "fit",
                    ):
                        continue
                    fn = getattr(obj, attr)
                    doc = inspect.getdoc(fn)
                    if not doc:
                        continue
                    lines += [
                        f"#### `{name}.{attr}{signature(fn)}`",
                        "",
                        doc,
                        "",
                    ]
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    out = pathlib.Path(__file__).with_name("api.md")
    text = render()
    if "--check" in sys.argv:
        sys.exit(0 if out.exists() and out.read_text() == text else 1)
    out.write_text(text)
    print(f"wrote {out} ({len(text)} characters)")
