"""Packaging for keras-trainplus (import name: keras_trainplus)."""

import pathlib
import re

from setuptools import find_packages
from setuptools import setup

HERE = pathlib.Path(__file__).parent
VERSION = re.search(
    r'__version__ = "([^"]+)"',
    (HERE / "keras_trainplus" / "version.py").read_text(),
).group(1)

TF = ["tensorflow>=2.16"]
TUNER = ["keras-tuner>=1.4.7", "tensorboard"]
PLOT = ["matplotlib>=3.5"]
# TrainingMonitor(log_dir=...): TensorBoard events without TensorFlow.
MONITOR = ["tensorboardX>=2.6"] + PLOT
EXAMPLES = ["scikit-learn>=1.0"] + MONITOR + TUNER
# The test extra pins what CI runs: the CPU build of TensorFlow and the two
# other backends at versions with local CPU wheels.
TEST = (
    [
        "pytest>=7",
        "pytest-xdist",
        "ruff==0.17.6",  # the formatter's output differs across versions
        "scipy",
        "tensorflow-cpu>=2.16",
        "jax==0.10.2",
        "torch==2.13.0",
    ]
    + TUNER
    + EXAMPLES
)

setup(
    name="keras-trainplus",
    version=VERSION,
    description=(
        "Drop-in Keras 3 training extensions: exact in-graph schedules "
        "(cyclical LR, 1cycle, warmup/decay, newbob), LR finder, dropout "
        "and clip scheduling, Cutout/MixUp/CutMix/SpecAugment, "
        "tf.distribute and keras-tuner helpers."
    ),
    long_description=(HERE / "README.md").read_text(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["keras_trainplus", "keras_trainplus.*"]),
    install_requires=["keras>=3.0", "numpy"],
    extras_require={
        "tf": TF,
        "tf-cpu": ["tensorflow-cpu>=2.16"],
        "jax": ["jax"],
        "torch": ["torch"],
        "tuner": TUNER,
        "plot": PLOT,
        "monitor": MONITOR,
        "examples": EXAMPLES,
        "test": TEST,
        "dev": TEST,
    },
    classifiers=[
        "Programming Language :: Python :: 3",
        "Framework :: Keras",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
