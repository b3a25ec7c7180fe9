"""The `>>>` examples in public docstrings run and give what they show."""

import doctest
import importlib
import pkgutil

import pytest

import keras_trainplus

MODULES = sorted(
    m.name
    for m in pkgutil.walk_packages(keras_trainplus.__path__, "keras_trainplus.")
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
