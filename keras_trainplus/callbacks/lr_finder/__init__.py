"""The learning-rate range test (Smith 2017; fastai's `lr_find`).

* `lr_finder`: the `LRFinder` callback.
* `find_lr`: runs the test on a model and restores it.
* `lr_finder_result`: `LRFinderResult` (losses, suggestions, plot).
* `_suggestions`: the suggestion rules (fastai's valley, steep, minimum, slide).
"""

from keras_trainplus.callbacks.lr_finder.find_lr import find_lr
from keras_trainplus.callbacks.lr_finder.lr_finder import LRFinder
from keras_trainplus.callbacks.lr_finder.lr_finder_result import LRFinderResult

__all__ = ["LRFinder", "LRFinderResult", "find_lr"]
