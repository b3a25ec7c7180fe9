"""keras_trainplus: drop-in Keras 3 training extensions.

Public API:

* `keras_trainplus.schedules`: pure, serializable, in-graph schedules.
* `keras_trainplus.callbacks`: `HyperparameterScheduler` (the one driver),
  `CyclicLR`, `OneCycleLR`, `WarmupDecayLR`, `PerEpochLR`,
  `NewbobLRControl`, `DropoutScheduler`, `GradientClipScheduler`,
  `GradientAccumulationScheduler`, `GradientNoise`, `DiscriminativeLR`,
  `GradualUnfreezing`, `WeightEMA`, `StochasticWeightAveraging`,
  `WeightNoise`, `LRFinder`; `TrainingMonitor` (observes the step).
* `keras_trainplus.layers`: `ScheduledDropout`, augmentation layers,
  `StochasticDepth`.
* `keras_trainplus.data`: `LengthBatcher` (length-bucketed batches, a
  curriculum on length).
* `keras_trainplus.find_lr` / `LRFinderResult`: the LR range test.
* `keras_trainplus.Knob`: a variable-backed value read by the compiled step.
"""

from keras_trainplus import callbacks
from keras_trainplus import data
from keras_trainplus import distribute
from keras_trainplus import layers
from keras_trainplus import schedules
from keras_trainplus import tuner
from keras_trainplus.callbacks.lr_finder.find_lr import find_lr
from keras_trainplus.callbacks.lr_finder.lr_finder_result import LRFinderResult
from keras_trainplus.knobs.knob import Knob
from keras_trainplus.plotting import plot_history
from keras_trainplus.plotting import plot_schedule
from keras_trainplus.version import __version__

__all__ = [
    "Knob",
    "LRFinderResult",
    "callbacks",
    "data",
    "distribute",
    "find_lr",
    "layers",
    "plot_history",
    "plot_schedule",
    "schedules",
    "tuner",
    "__version__",
]
