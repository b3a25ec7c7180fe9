"""Data: batches of similar-length sequences with a curriculum on length."""

from keras_trainplus.data.length_batcher import LengthBatcher

__all__ = ["LengthBatcher"]
