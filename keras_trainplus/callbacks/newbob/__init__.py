"""`NewbobLRControl`: RETURNN's `learning_rate_control`.

* `newbob_lr_control`: the callback (decides once per epoch, writes the
  learning rate through the driver).
* `_protocol`: RETURNN's decision logic as a pure-Python state machine.
* `_state_file`: the JSON state file (RETURNN's `learning_rate_file`).
"""

from keras_trainplus.callbacks.newbob.newbob_lr_control import NewbobLRControl

__all__ = ["NewbobLRControl"]
