"""`_internals.version`: every hook declares the Keras minor versions it
was tested on, warns once on others, and `require` names what is gone."""

import inspect
import warnings

import keras
import pytest

from keras_trainplus import _internals
from keras_trainplus._internals import version

# Plumbing shared by the hooks (no Keras attribute of its own).
PLUMBING = {
    "step",
    "caches",
    "state",
    "substituted",
    "unsubstituted",
    "hidden_optimizer_state",
    "method_layers",
    "HiddenState",
}


def test_every_hook_declares_the_versions_it_was_tested_on():
    for name in _internals.__all__:
        module = getattr(_internals, name)
        if module is version:
            continue
        for attr, fn in vars(module).items():
            if attr.startswith("_") or attr in PLUMBING:
                continue
            if not inspect.isfunction(fn) or fn.__module__ != module.__name__:
                continue
            assert getattr(fn, "tested_on", None), f"{name}.{attr}"
            assert all(v.count(".") == 1 for v in fn.tested_on)


def test_installed_keras_is_a_tested_version():
    tested = _internals.optimizer.optimizers_of.tested_on
    assert not version.untested(tested), (keras.__version__, tested)


def test_untested_version_warns_once_per_hook(monkeypatch):
    @version.hook("3.15")
    def probe_hook():
        return 7

    monkeypatch.setattr(keras, "__version__", "3.99.0")
    with pytest.warns(RuntimeWarning, match=r"probe_hook.*3\.15.*3\.99"):
        assert probe_hook() == 7
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert probe_hook() == 7  # once


def test_tested_version_does_not_warn(monkeypatch):
    @version.hook("3.15", "3.16")
    def other_hook():
        return 1

    monkeypatch.setattr(keras, "__version__", "3.16.2")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert other_hook() == 1


def test_require_names_the_missing_attribute():
    with pytest.raises(RuntimeError, match=r"`_gone`.*Keras"):
        version.require(object(), "_gone", "do a thing")
