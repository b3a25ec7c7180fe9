"""Every use of private Keras internals lives in this package.

One module per Keras surface; each public function is a *hook*, declared
with the Keras minor versions it was tested on (`version.hook`) and
checking the attributes it relies on (`version.require`).
`tests/_internals/test_private_access.py` fails if private Keras access
appears anywhere else in the package.

* `optimizer`: the learning-rate program, the update counters, extra
  optimizer variables.
* `gradient_accumulation`: the apply step of an accumulation whose factor
  changes during training, and per-replica accumulators.
* `optimizer_update`: the update step (scheduled hyperparameters, gradient
  clipping on the aggregated gradient, instance attributes, EMA finalize).
* `method_layers`: named layers over optimizer methods (how features
  compose), substituted attributes, the per-variable update on torch.
* `optimizer_slots`: the slots of each variable, the state shared by all.
* `layerwise`: a learning-rate multiplier per variable, freezing at 0.
* `layers`: hidden layer state, the layer tree, `call` on the instance,
  dropout's noise shape.
* `trainer`: metrics attached after build, `compute_loss`/`train_step` on
  the instance, the traced train function, the JAX train state.
* `fit_loop`: the running `fit`'s `CallbackList` and epoch iterator, and
  the wrappers that undo on every way out of `fit`.
* `random_state`: snapshot/restore of every random generator.
* `backup`: saving extra state with Keras's `BackupAndRestore`.
* `multi_worker`: fixes of stock `fit` under `MultiWorkerMirroredStrategy`.

See docs/architecture.md for how these serve the rest of the package.
"""

from keras_trainplus._internals import backup
from keras_trainplus._internals import fit_loop
from keras_trainplus._internals import gradient_accumulation
from keras_trainplus._internals import layers
from keras_trainplus._internals import layerwise
from keras_trainplus._internals import method_layers
from keras_trainplus._internals import multi_worker
from keras_trainplus._internals import optimizer
from keras_trainplus._internals import optimizer_slots
from keras_trainplus._internals import optimizer_update
from keras_trainplus._internals import random_state
from keras_trainplus._internals import trainer
from keras_trainplus._internals import version

__all__ = [
    "backup",
    "fit_loop",
    "gradient_accumulation",
    "layers",
    "layerwise",
    "method_layers",
    "multi_worker",
    "optimizer",
    "optimizer_slots",
    "optimizer_update",
    "random_state",
    "trainer",
    "version",
]
